"""The worker's Prometheus endpoint: the Temporal SDK's own metrics (task latencies, slots,
pollers, activity failures) beside ours (activities.metrics), on one port per worker
(`OMNIFLOW_WORKER_METRICS_HOST` / `OMNIFLOW_WORKER_METRICS_PORT`; port 0: no endpoint).

The SDK's metrics come through its MetricBuffer, not its PrometheusConfig exporter, which
would serve them from its own HTTP server on a second port. The buffer is drained every
second by the worker's event loop (and at each scrape) into `SdkMetrics`, a collector of this
process's registry; the names are those the SDK's exporter gives with counters_total_suffix,
unit_suffix and durations_as_seconds (`temporal_request_total`,
`temporal_workflow_task_schedule_to_start_latency_seconds`, ...), so dashboards written for
it read these.

The SDK runtime must be gone before the interpreter finalizes (a Rust runtime torn down
during finalization is what aborts processes at exit: temporalio/sdk-python#300): `serve`
unregisters the collector, which holds the buffer and so the runtime, and stops the HTTP
server when the worker stops."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

from runtime.logging import get_logger

log = get_logger("omniflow.metrics")

# Updates the SDK keeps between drains (one a second): far above what a worker makes.
BUFFER_SIZE = 200_000
DRAIN_SECONDS = 1.0
# Seconds; one set for every SDK latency (poll waits are long, task executions short).
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_UNIT_SUFFIX = {"s": "_seconds", "By": "_bytes"}

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.buckets[i] += 1
        self.count += 1
        self.total += value


@dataclass
class _Family:
    name: str  # as exposed, unit suffix included, `_total` not
    kind: str  # counter | gauge | histogram
    help: str
    series: dict[Labels, float | _Histogram] = field(default_factory=dict)

    def fold(self, labels: Labels, value: float) -> None:
        if self.kind == "histogram":
            hist = self.series.setdefault(labels, _Histogram())
            assert isinstance(hist, _Histogram)
            hist.observe(value)
        elif self.kind == "counter":
            self.series[labels] = float(self.series.get(labels, 0.0)) + value  # type: ignore[arg-type]
        else:
            self.series[labels] = value

    def metric(self) -> Metric:
        metric = Metric(self.name, self.help, self.kind)
        for labels, value in self.series.items():
            base = dict(labels)
            if isinstance(value, _Histogram):
                for bound, n in zip(BUCKETS, value.buckets, strict=True):
                    metric.add_sample(f"{self.name}_bucket", {**base, "le": str(float(bound))}, n)
                metric.add_sample(f"{self.name}_bucket", {**base, "le": "+Inf"}, value.count)
                metric.add_sample(f"{self.name}_count", base, value.count)
                metric.add_sample(f"{self.name}_sum", base, value.total)
            else:
                suffix = "_total" if self.kind == "counter" else ""
                metric.add_sample(f"{self.name}{suffix}", base, value)
        return metric


class SdkMetrics(Collector):
    """The SDK's buffered metric updates folded into Prometheus families: counters add their
    deltas, gauges keep the last value, histograms count each observation into BUCKETS."""

    def __init__(self, buffer: MetricBuffer) -> None:
        self._buffer: MetricBuffer | None = buffer
        self._families: dict[str, _Family] = {}
        # The SDK reuses one attributes object per label set; each is kept here, so its id()
        # is never reused by another.
        self._labels: dict[int, tuple[Mapping[str, object], Labels]] = {}
        self._lock = threading.Lock()  # the event loop drains, the HTTP server's thread scrapes

    def drain(self) -> None:
        with self._lock:
            if self._buffer is None:
                return
            for update in self._buffer.retrieve_updates():
                self._fold(update)

    def _fold(self, update: BufferedMetricUpdate) -> None:
        m = update.metric
        family = self._families.get(m.name)
        if family is None:
            kind = {BUFFERED_METRIC_KIND_COUNTER: "counter", BUFFERED_METRIC_KIND_HISTOGRAM: "histogram"}
            name = m.name + _UNIT_SUFFIX.get(m.unit or "", "")
            family = _Family(name, kind.get(m.kind, "gauge"), m.description or m.name)
            self._families[m.name] = family
        family.fold(self._labels_of(update.attributes), float(update.value))

    def _labels_of(self, attributes: Mapping[str, object]) -> Labels:
        known = self._labels.get(id(attributes))
        if known is None:
            known = (attributes, tuple(sorted((k, str(v)) for k, v in attributes.items())))
            self._labels[id(attributes)] = known
        return known[1]

    def collect(self) -> Iterator[Metric]:
        self.drain()
        with self._lock:
            families = [family.metric() for family in self._families.values()]
        yield from families

    def release(self) -> None:
        """Let go of the buffer (and with it the SDK runtime); later scrapes keep the totals."""
        self.drain()
        with self._lock:
            self._buffer = None


def sdk_runtime() -> tuple[Runtime, SdkMetrics]:
    """A Temporal SDK runtime whose metrics land in the returned collector."""
    buffer = MetricBuffer(BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
    return Runtime(telemetry=TelemetryConfig(metrics=buffer)), SdkMetrics(buffer)


@contextlib.asynccontextmanager
async def serve(
    registry: CollectorRegistry, sdk: SdkMetrics | None, host: str, port: int
) -> AsyncIterator[str | None]:
    """`registry` (with the SDK's metrics in it) at http://host:port/metrics while the block
    runs; yields that URL, None when port is 0 (no endpoint)."""
    if sdk is not None:
        registry.register(sdk)
    drainer = asyncio.create_task(_drain_forever(sdk)) if sdk is not None else None
    server = None
    try:
        if port:
            server, _ = start_http_server(port, host, registry=registry)
        yield f"http://{host}:{port}/metrics" if port else None
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if drainer is not None:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
        if sdk is not None:
            registry.unregister(sdk)
            sdk.release()


async def _drain_forever(sdk: SdkMetrics) -> None:
    while True:
        await asyncio.sleep(DRAIN_SECONDS)
        sdk.drain()
