"""The worker: runs every workflow and activity of omniflow on one task queue.

Activities are classes built here with their dependencies (engine, settings), so tests
build the same worker against their own database and Temporal test server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities import metrics
from activities.backorders import BackorderActivities
from activities.cycle_counts import CycleCountActivities
from activities.exceptions import ExceptionActivities
from activities.gateways import gateway_from_settings
from activities.housekeeping import HousekeepingActivities
from activities.orders import OrderActivities
from activities.publishing import PublishingActivities
from activities.purchasing import PurchasingActivities
from activities.replenishment import ReplenishmentActivities
from activities.returns import ReturnActivities
from activities.transfers import TransferActivities
from models.stock.batcher import ReservationBatcher
from runtime import worker_metrics
from runtime.db import make_async_engine
from runtime.logging import configure_logging, get_logger
from runtime.settings import Settings, get_settings
from runtime.telemetry import WORKER_SERVICE, process_tracing
from runtime.temporal import connect_or_fail, run_event_loop, worker_options
from runtime.worker_logging import LogContextInterceptor
from workflows.backorders import BackorderDispatcherWorkflow
from workflows.contracts import (
    BACKORDER_DISPATCHER_ID,
    REPLENISHMENT_SCHEDULE_ID,
    HousekeepingInput,
    ReplenishmentInput,
    WakeInput,
)
from workflows.cycle_count import CycleCountWorkflow
from workflows.housekeeping import HOUSEKEEPING_SCHEDULE_ID, HousekeepingWorkflow
from workflows.order import OrderWorkflow
from workflows.publisher import ChannelPublisherWorkflow
from workflows.purchase_order import PurchaseOrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow
from workflows.sales_return import ReturnWorkflow
from workflows.transfer import TransferWorkflow

log = get_logger("omniflow.worker")

WORKFLOWS: list[type] = [
    HousekeepingWorkflow,
    TransferWorkflow,
    CycleCountWorkflow,
    OrderWorkflow,
    BackorderDispatcherWorkflow,
    ReplenishmentWorkflow,
    PurchaseOrderWorkflow,
    ReturnWorkflow,
    ChannelPublisherWorkflow,
]


def reservation_batcher(engine: AsyncEngine, settings: Settings) -> ReservationBatcher | None:
    """The process's group reservation for order sourcing, on its own small pool: a sourcing
    step waits for its batch holding a connection of `engine`, so the batch must never wait
    for one of those (with every connection held by a waiting step it would never get one).
    None when `reservation_batching` is off: each step then reserves in its own transaction."""
    if not settings.reservation_batching:
        return None
    url = engine.url.render_as_string(hide_password=False)
    size = max(2, settings.db_pool_size // 4)
    return ReservationBatcher(make_async_engine(url, size, "omniflow-batcher"))


async def close_batcher(batcher: ReservationBatcher | None) -> None:
    """Wait for the batches in flight, then close the batcher's pool."""
    if batcher is not None:
        await batcher.aclose()
        await batcher.engine.dispose()


def build_activities(
    engine: AsyncEngine, settings: Settings, client: Client, batcher: ReservationBatcher | None = None
) -> list[object]:
    housekeeping = HousekeepingActivities(engine)
    gateway = gateway_from_settings(settings)
    orders = OrderActivities(engine, gateway, batcher or reservation_batcher(engine, settings))

    backorders = BackorderActivities(engine, client)
    exceptions = ExceptionActivities(engine)
    transfers = TransferActivities(engine)
    counts = CycleCountActivities(engine)
    replenishment = ReplenishmentActivities(engine, settings, client)
    purchasing = PurchasingActivities(engine)
    returns = ReturnActivities(engine, gateway)
    publishing = PublishingActivities(engine)
    return [
        housekeeping.purge_idempotency_records,
        housekeeping.refresh_expired_availability,
        exceptions.open_exception,
        exceptions.escalate_exception,
        exceptions.close_exception,
        exceptions.withdraw_exception,
        orders.record_order,
        orders.settle_hold,
        orders.source_order,
        orders.backorder_units,
        orders.pick_shipment,
        orders.pack_shipment,
        orders.ship_shipment,
        orders.cancel_order,
        orders.complete_order,
        backorders.wake_backorders,
        transfers.ship_transfer,
        transfers.receive_transfer,
        transfers.settle_transfer_discrepancy,
        counts.evaluate_count,
        counts.decide_count,
        replenishment.draft_replenishment,
        replenishment.start_replenishment_orders,
        purchasing.record_purchase_order,
        purchasing.send_purchase_order,
        purchasing.cancel_purchase_order,
        purchasing.confirm_purchase_order,
        purchasing.receive_purchase_order,
        purchasing.settle_receipt_discrepancy,
        purchasing.release_quarantine,
        purchasing.match_vendor_bill,
        purchasing.settle_bill_mismatch,
        purchasing.close_purchase_order,
        returns.record_return,
        returns.decide_return,
        returns.hold_return_new_order,
        returns.place_return_new_order,
        returns.receive_return_parcel,
        returns.inspect_returned_units,
        returns.settle_return,
        returns.end_return,
        publishing.publish_channel_round,
        publishing.mark_channel_failing,
    ]


def build_worker(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    task_queue: str | None = None,
    batcher: ReservationBatcher | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(engine, settings, client, batcher),  # type: ignore[arg-type]
        interceptors=[LogContextInterceptor()],
        graceful_shutdown_timeout=timedelta(seconds=5),
        **worker_options(settings),
    )


async def ensure_schedules(client: Client, settings: Settings) -> None:
    """Create our schedules once; every worker replica may try, the first wins."""
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(
            HOUSEKEEPING_SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    HousekeepingWorkflow.run,
                    HousekeepingInput(idempotency_ttl_hours=settings.idempotency_ttl_hours),
                    id="housekeeping",
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    every = timedelta(seconds=settings.replenishment_interval_seconds)
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(
            REPLENISHMENT_SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ReplenishmentWorkflow.run,
                    ReplenishmentInput(),
                    id="replenishment",
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )


async def ensure_backorder_dispatcher(client: Client, settings: Settings) -> None:
    """The one loop that wakes backordered orders when stock arrives (every replica may try)."""
    await client.start_workflow(
        BackorderDispatcherWorkflow.run,
        WakeInput(),
        id=BACKORDER_DISPATCHER_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def run(settings: Settings) -> None:
    if not settings.database_url or not settings.temporal_address:
        raise SystemExit("error: the worker needs DATABASE_URL and TEMPORAL_ADDRESS (omniflow dev sets both)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sdk_runtime, sdk_metrics = worker_metrics.sdk_runtime()
    engine = make_async_engine(settings.database_url, settings.db_pool_size, "omniflow-worker")
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    async with worker_metrics.serve(metrics.REGISTRY, sdk_metrics, host, port) as metrics_url:
        with metrics.open_exceptions_watched(engine, loop):
            await _poll_until(stop, settings, engine, sdk_runtime, metrics_url)
    await engine.dispose()


async def _poll_until(
    stop: asyncio.Event,
    settings: Settings,
    engine: AsyncEngine,
    sdk_runtime: Runtime,
    metrics_url: str | None,
) -> None:
    assert settings.temporal_address
    tracing = process_tracing(WORKER_SERVICE)  # None: traces off
    client = await connect_or_fail(
        settings.temporal_address,
        settings.temporal_namespace,
        "TEMPORAL_ADDRESS",
        interceptors=tracing.interceptors() if tracing else (),
        runtime=sdk_runtime,
    )
    if tracing:
        tracing.instrument_engine(engine)
    await ensure_schedules(client, settings)
    await ensure_backorder_dispatcher(client, settings)
    batcher = reservation_batcher(engine, settings)
    worker = build_worker(client, engine, settings, batcher=batcher)
    log.info("worker polling", task_queue=settings.task_queue, metrics=metrics_url or "off")
    async with worker:
        await stop.wait()
        log.info("worker stopping")
    await close_batcher(batcher)


def main() -> None:
    import sys

    from runtime.errors import StartupError

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        run_event_loop(run(settings))
    except StartupError as exc:  # one line naming the setting, no traceback (as cli/main.py)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
