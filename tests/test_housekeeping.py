from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from tests.test_replay import record_history
from workflows.contracts import HousekeepingInput, HousekeepingResult
from workflows.housekeeping import HousekeepingWorkflow


async def _run_housekeeping(temporal_client: Client, worker: Worker) -> tuple[str, HousekeepingResult]:
    """One housekeeping run to its end (24 h idempotency TTL): its workflow id and result."""
    run_id = f"housekeeping-{uuid.uuid4()}"
    result = await temporal_client.execute_workflow(
        HousekeepingWorkflow.run,
        HousekeepingInput(idempotency_ttl_hours=24),
        id=run_id,
        task_queue=worker.task_queue,
    )
    return run_id, result


async def test_housekeeping_purges_only_expired_finished_records(
    temporal_client: Client, worker: Worker, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        for key, age_h, state in (
            ("old", 30, "done"),
            ("fresh", 1, "done"),
            ("old-running", 30, "in_flight"),
        ):
            await conn.execute(
                text(
                    "INSERT INTO idempotency_record (scope, key, method, path, request_hash, state, created_at,"
                    " locked_at) VALUES ('s', :k, 'POST', '/x', 'h', :st, now() - make_interval(hours => :a),"
                    " now())"
                ),
                {"k": key, "a": age_h, "st": state},
            )
    run_id, result = await _run_housekeeping(temporal_client, worker)
    assert result.idempotency_records_purged == 1
    async with engine.connect() as conn:
        left = (await conn.execute(text("SELECT key FROM idempotency_record ORDER BY key"))).scalars().all()
    assert left == ["fresh", "old-running"]
    await record_history(temporal_client, run_id, "housekeeping")


async def test_housekeeping_publishes_availability_lost_to_expired_lots(
    temporal_client: Client, worker: Worker, engine: AsyncEngine
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.factories import atp, receive, standard_catalog

    await standard_catalog(engine)
    await receive(engine, "COFFEE", "DC-EAST", 5, lot="OLD", expires_at=datetime.now(UTC) + timedelta(days=1))
    await receive(
        engine, "COFFEE", "DC-EAST", 3, lot="NEW", expires_at=datetime.now(UTC) + timedelta(days=90)
    )
    async with engine.begin() as conn:  # time passes: the OLD lot expired an hour ago
        await conn.execute(
            text("UPDATE stock_balance SET expires_at = now() - interval '1 hour' WHERE lot = 'OLD'")
        )

    async def published() -> int | None:
        async with engine.connect() as conn:
            return (
                await conn.execute(
                    text(
                        "SELECT available FROM channel_availability WHERE channel = 'web' AND sku = 'COFFEE'"
                    )
                )
            ).scalar()

    assert await published() == 8  # stale: nothing committed when the lot expired
    assert await atp(engine, "web", "COFFEE") == 3
    run_id, result = await _run_housekeeping(temporal_client, worker)
    assert result.skus_refreshed_for_expiry == 1
    assert await published() == 3
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                text(
                    "SELECT available FROM availability_event WHERE channel = 'web' AND "
                    "sku = 'COFFEE' ORDER BY seq DESC LIMIT 1"
                )
            )
        ).scalar()
    assert last == 3
    await record_history(temporal_client, run_id, "housekeeping-with-expiry")
