from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from runtime.logging import get_logger

log = get_logger("omniflow.activities")


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
        purged = int(result.rowcount or 0)
        log.info("purged idempotency records", count=purged)
        return purged
