"""The audit trail: one append-only row per human action (the database refuses UPDATE,
DELETE and TRUNCATE, migration 0010), written in the transaction of the change it records.

`key` makes a row once-only where the change it records is keyed (a workflow step
`po-{number}:{step}`, an exception's decision, a stock adjustment's operation key): a retried
activity or a replayed request that reaches the write again finds the row there."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel

from domain.audit import Actor
from models.base import created_at_field


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (
        UniqueConstraint("key", name="uq_audit_entry_key"),
        Index("ix_audit_entry_actor", "actor_key_id", "id"),
        Index("ix_audit_entry_object", "object_type", "object_id", "id"),
        Index("ix_audit_entry_at", "at"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    key: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    at: datetime = created_at_field()
    actor_key_id: str = Field(max_length=40)
    actor_role: str = Field(max_length=20)
    actor_name: str = Field(max_length=200)
    action: str = Field(max_length=40)
    object_type: str = Field(max_length=40)
    object_id: str = Field(max_length=200)
    route: str = Field(max_length=200)
    before: dict[str, object] | None = Field(default=None, sa_column=Column(JSONB))
    after: dict[str, object] | None = Field(default=None, sa_column=Column(JSONB))
    request_id: str = Field(max_length=128)


@dataclass(frozen=True)
class AuditObject:
    type: str
    id: str


_APPEND = text(
    "INSERT INTO audit_entry (key, at, actor_key_id, actor_role, actor_name, action, object_type,"
    " object_id, route, before, after, request_id) VALUES (:key, now(), :kid, :role, :name, :action,"
    " :otype, :oid, :route, CAST(:before AS jsonb), CAST(:after AS jsonb), :rid)"
    " ON CONFLICT (key) DO NOTHING RETURNING id"
)


def _plain(value: Any) -> Any:
    """A dataclass (a workflow's snapshot or request) as its fields; anything else as text."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=_plain, sort_keys=True)


async def append(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    obj: AuditObject,
    *,
    before: Any = None,
    after: Any = None,
    key: str | None = None,
) -> bool:
    """Append the row inside the caller's transaction; False when `key` was recorded already."""
    row = (
        await conn.execute(
            _APPEND,
            {
                "key": key,
                "kid": actor.key_id,
                "role": actor.role,
                "name": actor.name,
                "action": action,
                "otype": obj.type,
                "oid": obj.id,
                "route": actor.route,
                "before": _json(before),
                "after": _json(after),
                "rid": actor.request_id,
            },
        )
    ).first()
    return row is not None


async def step(
    conn: AsyncConnection,
    actor: Actor | None,
    action: str,
    obj: AuditObject,
    key: str,
    *,
    before: Any = None,
    after: Any = None,
) -> None:
    """The row of a human action a workflow carries out, written by the activity inside the
    keyed transaction of its step (`key`: the step's own, `po-7:receive:R1`), so it commits
    with the change and a retried activity that reaches it again adds nothing. `actor` None:
    no person asked (a policy's default, the system, a history older than the trail)."""
    if actor is not None:
        await append(conn, actor, action, obj, before=before, after=after, key=f"{key}:audit")


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None  # an API key id
    object_type: str | None = None
    object_id: str | None = None
    action: str | None = None
    since: datetime | None = None  # from (inclusive)
    until: datetime | None = None  # to (exclusive)


_LIST = text(
    "SELECT * FROM audit_entry WHERE (CAST(:actor AS text) IS NULL OR actor_key_id = :actor)"
    " AND (CAST(:otype AS text) IS NULL OR object_type = :otype)"
    " AND (CAST(:oid AS text) IS NULL OR object_id = :oid)"
    " AND (CAST(:action AS text) IS NULL OR action = :action)"
    " AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)"
    " AND (CAST(:until AS timestamptz) IS NULL OR at < :until)"
    " AND (CAST(:before_id AS bigint) IS NULL OR id < :before_id)"
    " ORDER BY id DESC LIMIT :lim"
)


async def entries(
    conn: AsyncConnection, where: AuditFilter, before_id: int | None, limit: int
) -> list[Row[Any]]:
    """Newest first (by id, so a page boundary never moves as rows are added)."""
    result = await conn.execute(
        _LIST,
        {
            "actor": where.actor,
            "otype": where.object_type,
            "oid": where.object_id,
            "action": where.action,
            "since": where.since,
            "until": where.until,
            "before_id": before_id,
            "lim": limit,
        },
    )
    return list(result.all())
