"""Reading the audit trail in tests: the rows as the database holds them, the key id behind
an Authorization header, the entries `GET /v1/audit` shows, and a request retried with its
Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import hash_key


async def rows(
    engine: AsyncEngine, object_type: str | None = None, object_id: str | None = None
) -> list[Any]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT * FROM audit_entry WHERE (CAST(:t AS text) IS NULL OR object_type = :t)"
                " AND (CAST(:i AS text) IS NULL OR object_id = :i) ORDER BY id"
            ),
            {"t": object_type, "i": object_id},
        )
        return list(result.all())


async def one(engine: AsyncEngine, object_type: str, object_id: str, action: str) -> Any:
    """The one row of this action on this object (fails when there are none or several)."""
    found = [r for r in await rows(engine, object_type, object_id) if r.action == action]
    assert len(found) == 1, f"{len(found)} audit rows of {action} {object_type}:{object_id}"
    return found[0]


async def key_id(engine: AsyncEngine, headers: dict[str, str]) -> str:
    secret = headers["Authorization"].removeprefix("Bearer ")
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT id FROM api_key WHERE key_hash = :h"), {"h": hash_key(secret)}
        )
        return str(found.scalar_one())


async def assert_actor(engine: AsyncEngine, row: Any, headers: dict[str, str], role: str) -> None:
    assert (row.actor_key_id, row.actor_role) == (await key_id(engine, headers), role)
    assert row.actor_name == f"test {role}"


async def listed(api: httpx.AsyncClient, admin: dict[str, str], obj: str, action: str) -> dict[str, Any]:
    """The one entry `GET /v1/audit` shows of this action on `obj` (`type:id`); fails on none or several."""
    r = await api.get("/v1/audit", params={"object": obj, "action": action}, headers=admin)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    assert len(items) == 1, f"{len(items)} audit entries of {action} {obj}: {items}"
    return items[0]


def who(entry: dict[str, Any]) -> tuple[str, str, str]:
    return entry["actor"]["role"], entry["route"], entry["request_id"]


async def twice(
    api: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    body: dict[str, Any],
    request_id: str,
    *,
    until_taken: bool = False,
) -> httpx.Response:
    """POST, then the same request again with the same Idempotency-Key (a client's retry, under
    a request id of its own): the retry is the first answer replayed, and changes nothing.
    `until_taken`: a 409 first is the moment before the workflow has the object (the read
    model shows it already): asked again, under a new key."""
    for _ in range(100):
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await api.post(path, json=body, headers={**headers, **key, "X-Request-Id": request_id})
        if not (until_taken and first.status_code == 409):
            break
        await asyncio.sleep(0.05)
    assert first.status_code in (200, 202), first.text
    again = await api.post(path, json=body, headers={**headers, **key, "X-Request-Id": f"{request_id}-retry"})
    assert again.status_code == first.status_code and again.headers.get("idempotent-replayed") == "true"
    return first
