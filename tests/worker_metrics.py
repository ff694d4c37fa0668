"""The real worker with its Prometheus endpoint, for the metrics tests (test_worker_metrics.py,
test_dashboards.py): the worker of worker.build_worker on a client of its own SDK runtime (the
one worker.run makes), against the test's Temporal test server and database, and the endpoint
worker.run serves, on a free port; and reading the Prometheus text it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import metrics
from activities.gateways.sandbox import set_sandbox_behaviour
from runtime import worker_metrics
from runtime.ports import free_port
from runtime.settings import Settings
from tests.factories import receive
from tests.orders_api import Headers, create, idem, order_body
from tests.publishing import running_receiver

Sample = tuple[str, frozenset[tuple[str, str]], float]


@dataclass
class Scrape:
    """One answer of a /metrics endpoint: its families (by exposed name) and samples."""

    text: str

    def families(self) -> dict[str, str]:
        """Family name -> type, as the text declares them."""
        return {f.name: f.type for f in text_string_to_metric_families(self.text)}

    def samples(self) -> list[Sample]:
        return [
            (s.name, frozenset(s.labels.items()), s.value)
            for f in text_string_to_metric_families(self.text)
            for s in f.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        want = set(labels.items())
        return sum(v for n, ls, v in self.samples() if n == name and want <= ls)


@dataclass
class MetricsWorker:
    url: str

    async def scrape(self) -> Scrape:
        async with httpx.AsyncClient() as http:
            r = await http.get(self.url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        return Scrape(r.text)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The scenario's settings (import it with `observed`, which uses them)."""
    return scenario_settings(settings)


@pytest.fixture
async def observed(
    temporal_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[MetricsWorker]:
    """The real worker polling, its endpoint answering."""
    async for w in metrics_worker(temporal_env, engine, settings):
        yield w


async def metrics_worker(
    env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[MetricsWorker]:
    """The body of a fixture: yields while the worker polls and its endpoint answers."""
    from worker import build_worker, close_batcher, reservation_batcher

    runtime, sdk = worker_metrics.sdk_runtime()
    target = env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=env.client.namespace, runtime=runtime)
    port = free_port()
    async with worker_metrics.serve(metrics.REGISTRY, sdk, "127.0.0.1", port) as url:
        assert url == f"http://127.0.0.1:{port}/metrics"
        with metrics.open_exceptions_watched(engine, asyncio.get_running_loop()):
            batcher = reservation_batcher(engine, settings)
            async with build_worker(client, engine, settings, batcher=batcher):
                yield MetricsWorker(url)
            await close_batcher(batcher)


# -- a scenario that makes every metric the dashboard reads --------------------------------

# The held order escalates once, then its default action (cancel) runs: no update racing the
# SLA timer (the time-skipping test server mishandles that one).
SHORT_SLA = {"address_invalid": 3}
TIMED_OUT = "order-web-M-3"  # its authorization times out once: a failed, retried activity


def scenario_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "exception_sla_seconds": {**settings.exception_sla_seconds, **SHORT_SLA},
            "exception_max_escalations_by_kind": {"address_invalid": 1},
        }
    )


@dataclass
class Held:
    """What the scrapes showed while the held order waited."""

    open_while_held: float
    escalations: float


async def drive_scenario(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, observed: MetricsWorker
) -> Held:
    """Through the API and the real worker: an order held on a bad address, escalated, then
    cancelled by its default action; an order for mugs nobody has (backordered); an order whose payment
    authorization times out once; the web channel's publisher, its first delivery failed; the
    mug order cancelled."""
    web = keys["web"]
    await receive(engine, "TEE", "DC-EAST", 10)
    async with engine.connect() as conn:
        await set_sandbox_behaviour(conn, TIMED_OUT, "timeout", 1)
    good = order_body()["ship_to"]
    held_body = order_body("M-1", ship_to={**good, "postal_code": "ABC"})
    assert (await create(api, web, held_body)).status_code == 202

    async def seen(name: str) -> Scrape | None:
        scrape = await observed.scrape()
        return scrape if scrape.value(name, kind="address_invalid") else None

    # Open is read while it is open (6 s: its SLA, then the default action after one escalation),
    # not at the escalation: a scrape that lands after the default action reads 0 there.
    opened = await wait_until(lambda: seen("omniflow_exceptions_open"), "address_invalid open")
    escalated = await wait_until(
        lambda: seen("omniflow_exceptions_escalated_total"), "address_invalid escalated"
    )
    held = Held(
        opened.value("omniflow_exceptions_open", kind="address_invalid"),
        escalated.value("omniflow_exceptions_escalated_total", kind="address_invalid"),
    )
    mugs = order_body("M-2", lines=[{"sku": "MUG", "qty": 3, "unit_price": 1000}])
    mugs["payment"] = {"method": "card", "status": "captured", "amount": 3500, "reference": "ch_2"}
    assert (await create(api, web, mugs)).status_code == 202
    assert (await create(api, web, order_body("M-3"))).status_code == 202
    ends = {"order-web-M-1": "cancelled", "order-web-M-2": "awaiting_stock", TIMED_OUT: "allocated"}
    for order_id, status in ends.items():
        await wait_until(_status_is(api, web, order_id, status), f"{order_id} {status}")
    await _publish_with_a_failed_delivery(api, keys["admin"], engine, observed)
    r = await api.post("/v1/orders/order-web-M-2/cancel", json={"reason": "no mugs"}, headers=idem(web))
    assert r.status_code == 200, r.text  # an update the API sends
    return held


async def _publish_with_a_failed_delivery(
    api: httpx.AsyncClient, admin: Headers, engine: AsyncEngine, observed: MetricsWorker
) -> None:
    """The web channel's publisher: its first delivery (the snapshot) answered 500 and retried,
    then a delta for a receipt, whose lag is observed."""
    # The registry is the process's: earlier tests' deliveries on `web` are in it already.
    lag = "omniflow_publish_lag_seconds_count"
    counted = (await observed.scrape()).value(lag, channel="web")
    async with running_receiver("unknown yet") as receiver:
        receiver.fail_next = 1
        body = {"url": receiver.hook, "batch_ms": 0, "rate_per_s": 100}
        r = await api.put("/v1/channels/web/publishing", json=body, headers=admin)
        assert r.status_code == 200, r.text
        receiver.secret = r.json()["secret"]
        await wait_until(_async(lambda: bool(receiver.deliveries)), "the snapshot delivered")
        await receive(engine, "TEE", "DC-EAST", 1)

        async def lag_observed() -> bool:
            return (await observed.scrape()).value(lag, channel="web") > counted

        await wait_until(lag_observed, "a delta's lag observed")


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return check()

    return probe


def _status_is(
    api: httpx.AsyncClient, headers: Headers, order_id: str, status: str
) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        r = await api.get(f"/v1/orders/{order_id}", headers=headers)
        return r.status_code == 200 and r.json()["status"] == status

    return probe


T = TypeVar("T")


async def wait_until(probe: Callable[[], Awaitable[T | None]], what: str, seconds: float = 60.0) -> T:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")
