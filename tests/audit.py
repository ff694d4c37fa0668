"""Reading the audit trail in tests: the rows as the database holds them, and the key id
behind an Authorization header."""

from __future__ import annotations

from typing import Any

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
