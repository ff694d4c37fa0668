from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity


class HousekeepingActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="purge_idempotency_records")
    async def purge_idempotency_records(self, ttl_hours: int) -> int:
        """Delete finished Idempotency-Key records older than the retention. Naturally
        idempotent: a retry deletes what is left."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "DELETE FROM idempotency_record WHERE state = 'done' "
                    "AND created_at < now() - make_interval(hours => :h)"
                ),
                {"h": ttl_hours},
            )
        return int(result.rowcount or 0)
