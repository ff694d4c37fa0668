"""Stock operations: each is written once per business key (`stock_operation`), so a retried
call returns the stored result instead of applying twice, and a different call under a used
key is an OperationConflict."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import OperationConflict


@dataclass
class OperationResult:
    key: str
    kind: str
    replayed: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def claim(conn: AsyncConnection, key: str, kind: str, ref: str, payload: Any) -> OperationResult | None:
    """Claim `key`; return the stored result if this operation was already done."""
    digest = fingerprint(payload)
    inserted = await conn.execute(
        text(
            "INSERT INTO stock_operation (key, kind, ref, request_hash)"
            " VALUES (:key, :kind, :ref, :request_hash) ON CONFLICT (key) DO NOTHING RETURNING key"
        ),
        {"key": key, "kind": kind, "ref": ref, "request_hash": digest},
    )
    if inserted.first() is not None:
        return None
    row = (
        await conn.execute(
            text("SELECT kind, request_hash, result FROM stock_operation WHERE key = :key"), {"key": key}
        )
    ).one()
    if row.request_hash != digest or row.kind != kind:
        raise OperationConflict(key)
    return OperationResult(key=key, kind=kind, replayed=True, data=dict(row.result or {}))


async def finish(conn: AsyncConnection, result: OperationResult) -> OperationResult:
    await conn.execute(
        text("UPDATE stock_operation SET result = CAST(:result AS jsonb) WHERE key = :key"),
        {"key": result.key, "result": json.dumps(result.data, default=str)},
    )
    return result


def replayed(key: str, kind: str, digest: str, op: dict[str, Any]) -> OperationResult:
    """The stored result of a done operation (`op`: its kind, hash and result)."""
    if op["hash"] != digest or op["kind"] != kind:
        raise OperationConflict(key)
    return OperationResult(key=key, kind=kind, replayed=True, data=dict(op["result"] or {}))


async def replay_committed(conn: AsyncConnection, key: str, kind: str, digest: str) -> OperationResult:
    row = (
        await conn.execute(
            text("SELECT kind, request_hash AS hash, result FROM stock_operation WHERE key = :key"),
            {"key": key},
        )
    ).one()
    return replayed(key, kind, digest, dict(row._mapping))
