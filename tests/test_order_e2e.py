"""End to end over HTTP against the running stack (`omniflow dev`: embedded Postgres, the
Temporal dev server, the worker process and the API), as channels and a warehouse use it:
orders from three channels to `completed` with a split shipment, a backorder woken by a
stock adjustment, a short pick and a cancel; then the same with the worker SIGKILLed
mid-flight, after which every order completes exactly once and the books are clean."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psutil
import pytest

from bench.chaos import run_checks, worker_process
from bench.common import CHANNELS, LOCATIONS, NYC_ADDRESS, create_catalog
from client import (
    ApiError,
    Customer,
    NewLine,
    NewOrder,
    NewPayment,
    NewSku,
    OmniflowClient,
    Order,
    Package,
    PackLine,
    PickLine,
    StockAdjustment,
)
from client import operations as ops
from tests.stack import DevStack

SKUS = [
    NewSku(code="TEE", name="Tee", unit_cost=600, price=2500),
    NewSku(code="MUG", name="Mug", unit_cost=350, price=1600),
    NewSku(code="BEAN", name="Coffee beans", unit_cost=500, price=1400),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    s = DevStack(
        tmp_path_factory.mktemp("orders") / "data",
        extra_env={"OMNIFLOW_BACKORDER_RECHECK_SECONDS": "5", "OMNIFLOW_RPC_TIMEOUT_SECONDS": "3"},
    ).start()
    yield s
    s.stop()


class Shop:
    """The stack as its users see it: an admin, one key per channel, a warehouse key."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.admin = OmniflowClient(stack.api, stack.admin_key, timeout=30.0)
        self.keys: dict[str, str] = {}

    def key(self, role: str, channel: str | None = None) -> OmniflowClient:
        name = f"{role}:{channel}"
        if name not in self.keys:
            reply = self.admin.send(ops.create_api_key(role, channel=channel, name=name))
            assert reply.status == 201
            self.keys[name] = reply.value.key
        return self.admin.with_options(api_key=self.keys[name])

    def stock(self, sku: str, location: str, delta: int, reason: str = "initial") -> None:
        adjustment = StockAdjustment(sku=sku, location=location, delta=delta, reason=reason)
        key = f"adj-{sku}-{location}-{time.time_ns()}"
        assert self.admin.send(ops.adjust_stock(adjustment, idempotency_key=key)).status in (200, 201)

    def order(self, channel: str, external_id: str, lines: list[tuple[str, int, int]], **extra: Any) -> Order:
        body = NewOrder(
            channel=channel,
            external_id=external_id,
            customer=Customer(id=f"c-{external_id}", email="a@b.co"),
            ship_to=NYC_ADDRESS,
            lines=[NewLine(sku=s, qty=q, unit_price=p) for s, q, p in lines],
            shipping_amount=500,
            tax_amount=200,
            payment=NewPayment(
                method="card",
                status="authorized",
                reference=f"psp-{external_id}",
                amount=sum(q * p for _, q, p in lines) + 700,
            ),
            **extra,
        )
        reply = self.key("channel", channel).send(
            ops.create_order(body, idempotency_key=f"create-{external_id}")
        )
        assert reply.status in (200, 202)
        return reply.value

    def get(self, order_id: str) -> Order:
        return self.admin.get_order(order_id)

    def until(self, order_id: str, ok: Callable[[Order], bool], timeout: float = 60.0) -> Order:
        deadline = time.monotonic() + timeout
        order = self.get(order_id)
        while not ok(order):
            if time.monotonic() > deadline:
                raise AssertionError(f"{order_id} stuck: {order.status} {order.lines} {order.shipments}")
            time.sleep(0.2)
            order = self.get(order_id)
        return order

    def work_the_floor(self, warehouse: OmniflowClient, short: dict[str, int] | None = None) -> int:
        """Pick, pack and ship every open pick task, wave by wave (less `short` units per
        shipment id prefix the first time one is seen). Returns the shipments shipped."""
        shipped = 0
        for wave in warehouse.pick_tasks().items:
            for shp in wave.shipments:
                shipped += self.fulfil(warehouse, shp.id, short or {})
        return shipped

    def fulfil(self, warehouse: OmniflowClient, shipment_id: str, short: dict[str, int]) -> int:
        shp = warehouse.get_shipment(shipment_id)
        lines = [PickLine(sku=ln.sku, qty=ln.qty - short.get(ln.sku, 0)) for ln in shp.lines if ln.qty]
        if shp.status == "allocated":
            try:
                shp = warehouse.pick_shipment(shipment_id, lines)
            except ApiError as exc:
                if exc.status == 409:
                    return 0  # cancelled or already picked meanwhile
                raise
        picked = [PackLine(sku=ln.sku, qty=ln.picked) for ln in shp.lines if ln.picked]
        if not picked:
            return 0
        if shp.status == "picked":
            package = Package(weight_g=800, length_mm=300, width_mm=200, height_mm=100, lines=picked)
            warehouse.pack_shipment(shipment_id, [package])
        try:
            warehouse.ship_shipment(shipment_id, carrier="UPS", tracking=f"1Z-{shipment_id}")
        except ApiError as exc:
            if exc.status == 409:
                return 0
            raise
        return 1


def _checks_clean(stack: DevStack) -> None:
    checks = run_checks(stack)
    assert all(c["exit"] == 0 for c in checks.values()), checks


@pytest.fixture(scope="module")
def shop(stack: DevStack) -> Shop:
    s = Shop(stack)
    create_catalog(s.admin, SKUS, LOCATIONS, CHANNELS)
    s.stock("TEE", "DC-EAST", 20)
    s.stock("TEE", "DC-WEST", 20)
    s.stock("MUG", "DC-WEST", 50)
    return s


def test_orders_from_three_channels_complete(shop: Shop, stack: DevStack) -> None:
    warehouse = shop.key("warehouse")
    split = shop.order("web", "W-1", [("TEE", 30, 2500), ("MUG", 2, 1600)])
    assert split.status in ("received", "allocated")
    again = shop.order("web", "W-1", [("TEE", 30, 2500), ("MUG", 2, 1600)])
    assert again.id == split.id
    waiting = shop.order("market", "M-1", [("BEAN", 3, 1400)])
    short = shop.order("edi", "E-1", [("TEE", 4, 2000)])
    doomed = shop.order("web", "W-2", [("MUG", 1, 1600)])

    web = shop.until(split.id, lambda o: o.status == "allocated")
    assert sorted(s.location for s in web.shipments) == ["DC-EAST", "DC-WEST"]
    shop.until(waiting.id, lambda o: o.status == "awaiting_stock")
    e1 = shop.until(short.id, lambda o: o.status == "allocated")
    shop.until(doomed.id, lambda o: o.status == "allocated")

    with shop.key("channel", "web") as web_key:
        r = web_key.send(ops.cancel_order(doomed.id, "customer asked"))
        assert r.status == 200
        assert r.value.status == "cancelled"
        with pytest.raises(ApiError) as hidden:
            web_key.get_order(waiting.id)
        assert hidden.value.status == 404  # another channel's order

    shop.fulfil(warehouse, e1.shipments[0].id, {"TEE": 1})  # one tee is not on the shelf
    shop.until(short.id, lambda o: o.lines[0].shipped == 3)
    shop.work_the_floor(warehouse)
    shop.until(split.id, lambda o: o.status == "completed")

    shop.stock("BEAN", "DC-WEST", 3)  # the backorder is woken by the adjustment
    shop.stock("TEE", "DC-EAST", 1, reason="found")  # …and the short-picked unit's replacement
    shop.until(waiting.id, lambda o: o.status == "allocated", timeout=30)
    shop.until(short.id, lambda o: o.lines[0].reserved == 1, timeout=30)
    shop.work_the_floor(warehouse)
    for order in (split, waiting, short):
        done = shop.until(order.id, lambda o: o.status == "completed")
        assert all(ln.shipped + ln.cancelled == ln.qty for ln in done.lines)
        assert done.payment.captured == done.amounts.total
    completed = shop.admin.list_orders(status="completed").items
    assert {o.id for o in completed} >= {split.id, waiting.id, short.id}
    _checks_clean(stack)


def test_a_pick_retried_after_a_503_is_taken_once(shop: Shop, stack: DevStack) -> None:
    """The worker does not answer in time (503) but the pick goes through once it does; the
    warehouse retries with the same Idempotency-Key and gets that pick's answer (the update's
    id comes from the key), not a 409 for picking a picked shipment."""
    warehouse = shop.key("warehouse")
    order = shop.order("web", "R-503", [("MUG", 1, 1600)])
    shipment = shop.until(order.id, lambda o: o.status == "allocated").shipments[0]
    lines = [PickLine(sku="MUG", qty=1)]
    worker = _worker(stack)
    worker.suspend()
    try:
        with pytest.raises(ApiError) as late:
            warehouse.pick_shipment(shipment.id, lines, idempotency_key="pick-R-503")
        assert late.value.status == 503
    finally:
        worker.resume()
    shop.until(order.id, lambda o: o.shipments[0].status == "picked")  # the first try went through
    again = warehouse.pick_shipment(shipment.id, lines, idempotency_key="pick-R-503")
    assert again.status == "picked" and again.lines[0].picked == 1
    with pytest.raises(ApiError) as twice:  # a new key is a new pick: refused
        warehouse.pick_shipment(shipment.id, lines, idempotency_key="pick-R-503-b")
    assert twice.value.status == 409
    shop.fulfil(warehouse, shipment.id, {})
    shop.until(order.id, lambda o: o.status == "completed")


def _worker(stack: DevStack) -> psutil.Process:
    """The running worker process (waiting while the supervisor restarts a killed one)."""
    process = worker_process(stack)
    assert process is not None, "no worker process"
    return process


def test_orders_survive_a_killed_worker_and_complete_exactly_once(shop: Shop, stack: DevStack) -> None:
    warehouse = shop.key("warehouse")
    shop.stock("TEE", "DC-WEST", 40)
    ids = [shop.order("web", f"K-{i}", [("TEE", 2, 2500), ("MUG", 1, 1600)]).id for i in range(12)]
    _worker(stack).send_signal(signal.SIGKILL)  # while they are being recorded and sourced
    for order_id in ids:
        shop.until(order_id, lambda o: o.status == "allocated", timeout=90)
    kills = [
        threading.Timer(delay, lambda: _worker(stack).send_signal(signal.SIGKILL)) for delay in (0.5, 4.0)
    ]
    for timer in kills:  # in the middle of picking, packing and shipping
        timer.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        # A step refused or timed out while the worker was down: the next round retries it.
        with contextlib.suppress(AssertionError, ApiError, httpx.HTTPError):
            shop.work_the_floor(warehouse)
            for order_id in ids:  # a parcel picked or packed when the worker died is taken up again
                for shp in shop.get(order_id).shipments:
                    if shp.status in ("picked", "packed"):
                        shop.fulfil(warehouse, shp.id, {})
        if all(shop.get(i).status == "completed" for i in ids):
            break
        time.sleep(0.5)
    for timer in kills:
        timer.join()
    assert stack.stderr().count("worker exited") >= 3
    for order_id in ids:
        done = shop.get(order_id)
        assert done.status == "completed", (
            done.status,
            done.shipments,
            done.timeline,
            [ln for ln in stack.stderr().splitlines() if order_id in ln and ("rror" in ln or "WARN" in ln)][
                -5:
            ],
        )
        assert [(ln.qty, ln.shipped) for ln in done.lines] == [(2, 2), (1, 1)]
        shipped_events = [e for e in done.timeline if e.event == "shipped"]
        assert len(shipped_events) == len([s for s in done.shipments if s.status == "shipped"])
        assert done.payment.captured == done.amounts.total  # captured once, not twice
    _checks_clean(stack)
