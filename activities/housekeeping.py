from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.availability import lock_skus, refresh_availability
from runtime.logging import get_logger
from workflows.contracts import (
    PURGE_IDEMPOTENCY_RECORDS,
    REFRESH_EXPIRED_AVAILABILITY,
    PurgeRecords,
    RefreshExpired,
)

log = get_logger("omniflow.activities")


class HousekeepingActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @PURGE_IDEMPOTENCY_RECORDS.implement
    async def purge_idempotency_records(self, inp: PurgeRecords) -> int:
        """Delete finished Idempotency-Key records older than the retention. Naturally
        idempotent: a retry deletes what is left."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "DELETE FROM idempotency_record WHERE state = 'done' "
                    "AND created_at < now() - make_interval(hours => :h)"
                ),
                {"h": inp.ttl_hours},
            )
        purged = int(result.rowcount or 0)
        log.info("purged idempotency records", count=purged)
        return purged

    @REFRESH_EXPIRED_AVAILABILITY.implement
    async def refresh_expired_availability(self, inp: RefreshExpired) -> int:
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
                        {"h": inp.lookback_hours},
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
