"""The worker's own Prometheus metrics, in the registry its endpoint serves
(runtime.worker_metrics, beside the Temporal SDK's). Each is counted at the one place its
event happens, and only once the transaction that makes the event true has committed: an
activity retried after a rollback, or re-run after a commit whose answer was lost, does not
count again.

- omniflow_steps_total{process,step,outcome}: runs of a keyed step (order, purchase order,
  return; `step` is the first word of the step's name: `record`, `source`, `pick`, `receipt`). `done`: the step ran and its record committed, once per
  step however often Temporal retries it; `repeated`: it found its record and answered from
  it (a retry, a replayed update); `refused`: a business refusal (non-retryable);
  `rolled_back`: anything else, retried by Temporal or the step's own loop.
- omniflow_exceptions_opened_total{kind}, omniflow_exceptions_escalated_total{kind}: rows
  inserted (not a retry finding its row), levels raised (not a repeat of the same level).
- omniflow_exceptions_closed_total{kind,status}: rows that left `open`; status `resolved`
  (a decision, or the default action at the limit) or `cancelled` (withdrawn: the reason
  went away).
- omniflow_exceptions_open{kind}, omniflow_exceptions_overdue{kind}: read from the database
  at each scrape (every worker answers the same: take the max across them).
- omniflow_reservations_refused_total{reason,outcome}: order lines sourcing could not
  reserve, by the rule that refused them (domain.errors.ShortageReason) and what became of
  the units (`backordered`, `cancelled`).
- omniflow_publish_lag_seconds{channel}: from an ATP change's commit to the receiver's 2xx,
  one observation per delta delivery that advanced the cursor."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.exceptions import ApplicationError

from runtime.logging import get_logger

log = get_logger("omniflow.metrics")

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

STEPS = Counter(
    "omniflow_steps_total",
    "Runs of a keyed step by process, activity and outcome (done counts once per step).",
    ["process", "step", "outcome"],
    registry=REGISTRY,
)
EXCEPTIONS_OPENED = Counter(
    "omniflow_exceptions_opened_total", "Exceptions opened, by kind.", ["kind"], registry=REGISTRY
)
EXCEPTIONS_ESCALATED = Counter(
    "omniflow_exceptions_escalated_total",
    "Escalations (a level raised), by kind.",
    ["kind"],
    registry=REGISTRY,
)
EXCEPTIONS_CLOSED = Counter(
    "omniflow_exceptions_closed_total",
    "Exceptions closed, by kind and status (resolved, cancelled: withdrawn).",
    ["kind", "status"],
    registry=REGISTRY,
)
RESERVATIONS_REFUSED = Counter(
    "omniflow_reservations_refused_total",
    "Order lines sourcing could not reserve, by the rule that refused them and what became of them.",
    ["reason", "outcome"],
    registry=REGISTRY,
)
PUBLISH_LAG = Histogram(
    "omniflow_publish_lag_seconds",
    "From the commit of an ATP change to the receiver's 2xx, per channel.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=REGISTRY,
)


def after_commit(conn: AsyncConnection, count: Callable[[], None]) -> None:
    """Run `count` when the transaction `conn` is in commits; never if it rolls back."""
    sync = conn.sync_connection
    assert sync is not None
    pending = [count]

    def committed(_: object) -> None:
        while pending:
            pending.pop()()

    def rolled_back(_: object) -> None:
        pending.clear()

    event.listen(sync, "commit", committed)
    event.listen(sync, "rollback", rolled_back)


@dataclass
class StepRun:
    """The keyed steps one transaction ran (a step, and any it chained in the same
    transaction: record, then source), each by name, and whether it found its record."""

    steps: dict[str, bool] = field(default_factory=dict)

    def found(self, step: str, record: bool) -> None:
        """`step`: its name in its key (`pick:S-1`, `receive:7`), counted by its first word."""
        self.steps[step.split(":", 1)[0]] = record


@asynccontextmanager
async def counted_step(process: str, step: str) -> AsyncIterator[StepRun]:
    """Around a keyed step's transaction (outside it, so `done` is counted after the commit);
    a step it chains shares its outcome, unless it found its record."""
    run = StepRun()
    run.found(step, False)
    failed = None
    try:
        yield run
    except ApplicationError as exc:
        failed = "refused" if exc.non_retryable else "rolled_back"
        raise
    except BaseException:
        failed = "rolled_back"
        raise
    finally:
        for name, record in run.steps.items():
            outcome = failed or ("repeated" if record else "done")
            STEPS.labels(process, name, outcome).inc()


class OpenExceptions(Collector):
    """omniflow_exceptions_open / _overdue by kind, read at each scrape on the worker's event
    loop (the scrape arrives on the HTTP server's thread)."""

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> None:
        """Made on the loop's own thread."""
        self.engine, self.loop, self.timeout = engine, loop, timeout
        self.loop_thread = threading.get_ident()

    async def _read(self) -> list[tuple[str, int, int]]:
        sql = text(
            "SELECT kind, count(*) AS open, count(*) FILTER (WHERE due_at < now()) AS overdue"
            " FROM exception WHERE status = 'open' GROUP BY kind"
        )
        async with self.engine.connect() as conn:
            return [(r.kind, r.open, r.overdue) for r in await conn.execute(sql)]

    def collect(self) -> Iterator[Metric]:
        if threading.get_ident() == self.loop_thread:
            return  # called on the loop itself: it cannot wait for its own query
        try:
            rows = asyncio.run_coroutine_threadsafe(self._read(), self.loop).result(self.timeout)
        except Exception as exc:  # a scrape without these beats a failed scrape
            log.warning("open exceptions unreadable for metrics", error=f"{type(exc).__name__}: {exc}")
            return
        open_now = GaugeMetricFamily(
            "omniflow_exceptions_open", "Exceptions open now, by kind.", labels=["kind"]
        )
        overdue = GaugeMetricFamily(
            "omniflow_exceptions_overdue", "Open exceptions past their due time, by kind.", labels=["kind"]
        )
        for kind, n_open, n_overdue in rows:
            open_now.add_metric([kind], n_open)
            overdue.add_metric([kind], n_overdue)
        yield open_now
        yield overdue


@contextmanager
def open_exceptions_watched(engine: AsyncEngine, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    collector = OpenExceptions(engine, loop)
    REGISTRY.register(collector)
    try:
        yield
    finally:
        REGISTRY.unregister(collector)
