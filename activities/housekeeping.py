from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from models.availability import lock_skus, refresh_availability
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

    @activity.defn(name="refresh_expired_availability")
    async def refresh_expired_availability(self, lookback_hours: int) -> int:
        """Recompute and publish ATP of SKUs whose lots expired recently (one SKU per
        transaction, under its lock, like every other availability change)."""
        async with self.engine.connect() as conn:
            skus = (
                (
                    await conn.execute(
                        text(
                            "SELECT DISTINCT sku FROM stock_balance WHERE status = 'sellable' AND qty > 0 AND "
                            "expires_at <= now() AND expires_at > now() - make_interval(hours => :h) ORDER BY sku"
                        ),
                        {"h": lookback_hours},
                    )
                )
                .scalars()
                .all()
            )
        for sku in skus:
            async with self.engine.begin() as conn:
                await lock_skus(conn, [sku])
                await refresh_availability(conn, [sku])
        if skus:
            log.info("availability refreshed for expired lots", skus=len(skus))
        return len(skus)
