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
from bench.common import NYC
from tests.stack import DevStack

CATALOG: list[tuple[str, dict[str, Any]]] = [
    ("/v1/skus", {"code": "TEE", "name": "Tee", "unit_cost": 600, "price": 2500}),
    ("/v1/skus", {"code": "MUG", "name": "Mug", "unit_cost": 350, "price": 1600}),
    ("/v1/skus", {"code": "BEAN", "name": "Coffee beans", "unit_cost": 500, "price": 1400}),
    ("/v1/locations", {"code": "DC-EAST", "name": "East", "type": "dc", "lat": 40.7, "lon": -74.2, "ship_cost": 450,
                       "priority": 1}),
    ("/v1/locations", {"code": "DC-WEST", "name": "West", "type": "dc", "lat": 34.1, "lon": -117.7, "ship_cost": 380,
                       "priority": 2}),
    ("/v1/channels", {"code": "web", "type": "web", "locations": ["DC-EAST", "DC-WEST"], "sourcing_rule": "nearest"}),
    ("/v1/channels", {"code": "market", "type": "marketplace", "locations": ["DC-EAST", "DC-WEST"],
                      "sourcing_rule": "cheapest"}),
    ("/v1/channels", {"code": "edi", "type": "b2b", "locations": ["DC-EAST"], "sourcing_rule": "priority"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    s = DevStack(tmp_path_factory.mktemp("orders") / "data",
                 extra_env={"OMNIFLOW_BACKORDER_RECHECK_SECONDS": "5", "OMNIFLOW_RPC_TIMEOUT_SECONDS": "3"}).start()  # fmt: skip
    yield s
    s.stop()


class Shop:
    """The stack as its users see it: an admin, one key per channel, a warehouse key."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.admin = httpx.Client(base_url=stack.api, headers=stack.headers, timeout=30.0)
        self.keys: dict[str, str] = {}

    def key(self, role: str, channel: str | None = None) -> httpx.Client:
        name = f"{role}:{channel}"
        if name not in self.keys:
            body = {"role": role, "name": name, **({"channel": channel} if channel else {})}
            r = self.admin.post("/v1/api-keys", json=body)
            assert r.status_code == 201, r.text
            self.keys[name] = r.json()["key"]
        return httpx.Client(base_url=self.stack.api, headers={"Authorization": f"Bearer {self.keys[name]}"},
                            timeout=30.0)  # fmt: skip

    def stock(self, sku: str, location: str, delta: int, reason: str = "initial") -> None:
        r = self.admin.post("/v1/inventory/adjustments", headers={"Idempotency-Key": f"adj-{sku}-{location}-{time.time_ns()}"},
                            json={"sku": sku, "location": location, "status": "sellable", "delta": delta, "reason": reason})  # fmt: skip
        assert r.status_code in (200, 201), r.text

    def order(
        self, channel: str, external_id: str, lines: list[tuple[str, int, int]], **extra: Any
    ) -> dict[str, Any]:
        body = {"channel": channel, "external_id": external_id, "customer": {"id": f"c-{external_id}", "email": "a@b.co"},
                "ship_to": NYC, "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines],
                "shipping_amount": 500, "tax_amount": 200,
                "payment": {"method": "card", "status": "authorized", "reference": f"psp-{external_id}",
                            "amount": sum(q * p for _, q, p in lines) + 700}, **extra}  # fmt: skip
        with self.key("channel", channel) as http:
            r = http.post("/v1/orders", json=body, headers={"Idempotency-Key": f"create-{external_id}"})
            assert r.status_code in (200, 202), r.text
            return dict(r.json())

    def get(self, order_id: str) -> dict[str, Any]:
        r = self.admin.get(f"/v1/orders/{order_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def until(
        self, order_id: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        order = self.get(order_id)
        while not ok(order):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{order_id} stuck: {order['status']} {order['lines']} {order['shipments']}"
                )
            time.sleep(0.2)
            order = self.get(order_id)
        return order

    def work_the_floor(self, warehouse: httpx.Client, short: dict[str, int] | None = None) -> int:
        """Pick, pack and ship every open pick task, wave by wave (less `short` units per
        shipment id prefix the first time one is seen). Returns the shipments shipped."""
        shipped = 0
        r = warehouse.get("/v1/pick-tasks")
        assert r.status_code == 200, r.text
        for wave in r.json()["items"]:
            for shp in wave["shipments"]:
                shipped += self.fulfil(warehouse, shp["id"], short or {})
        return shipped

    def fulfil(self, warehouse: httpx.Client, shipment_id: str, short: dict[str, int]) -> int:
        shp = warehouse.get(f"/v1/shipments/{shipment_id}").json()
        lines = [
            {"sku": ln["sku"], "qty": ln["qty"] - short.get(ln["sku"], 0)} for ln in shp["lines"] if ln["qty"]
        ]
        if shp["status"] == "allocated":
            r = warehouse.post(f"/v1/shipments/{shipment_id}/pick", json={"lines": lines})
            if r.status_code == 409:
                return 0  # cancelled or already picked meanwhile
            assert r.status_code == 200, r.text
            shp = r.json()
        picked = [{"sku": ln["sku"], "qty": ln["picked"]} for ln in shp["lines"] if ln["picked"]]
        if not picked:
            return 0
        if shp["status"] == "picked":
            r = warehouse.post(f"/v1/shipments/{shipment_id}/pack", json={"packages": [
                {"weight_g": 800, "length_mm": 300, "width_mm": 200, "height_mm": 100, "lines": picked}]})  # fmt: skip
            assert r.status_code == 200, r.text
        r = warehouse.post(
            f"/v1/shipments/{shipment_id}/ship", json={"carrier": "UPS", "tracking": f"1Z-{shipment_id}"}
        )
        assert r.status_code in (200, 409), r.text
        return 1 if r.status_code == 200 else 0


def _checks_clean(stack: DevStack) -> None:
    checks = run_checks(stack)
    assert all(c["exit"] == 0 for c in checks.values()), checks


@pytest.fixture(scope="module")
def shop(stack: DevStack) -> Shop:
    s = Shop(stack)
    for path, body in CATALOG:
        r = s.admin.post(path, json=body)
        assert r.status_code in (200, 201), r.text
    s.stock("TEE", "DC-EAST", 20)
    s.stock("TEE", "DC-WEST", 20)
    s.stock("MUG", "DC-WEST", 50)
    return s


def test_orders_from_three_channels_complete(shop: Shop, stack: DevStack) -> None:
    warehouse = shop.key("warehouse")
    split = shop.order("web", "W-1", [("TEE", 30, 2500), ("MUG", 2, 1600)])
    assert split["status"] in ("received", "allocated")
    again = shop.order("web", "W-1", [("TEE", 30, 2500), ("MUG", 2, 1600)])
    assert again["id"] == split["id"]
    waiting = shop.order("market", "M-1", [("BEAN", 3, 1400)])
    short = shop.order("edi", "E-1", [("TEE", 4, 2000)])
    doomed = shop.order("web", "W-2", [("MUG", 1, 1600)])

    web = shop.until(split["id"], lambda o: o["status"] == "allocated")
    assert sorted(s["location"] for s in web["shipments"]) == ["DC-EAST", "DC-WEST"]
    shop.until(waiting["id"], lambda o: o["status"] == "awaiting_stock")
    e1 = shop.until(short["id"], lambda o: o["status"] == "allocated")
    shop.until(doomed["id"], lambda o: o["status"] == "allocated")

    with shop.key("channel", "web") as web_key:
        r = web_key.post(f"/v1/orders/{doomed['id']}/cancel", json={"reason": "customer asked"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        assert web_key.get(f"/v1/orders/{waiting['id']}").status_code == 404  # another channel's order

    shop.fulfil(warehouse, e1["shipments"][0]["id"], {"TEE": 1})  # one tee is not on the shelf
    shop.until(short["id"], lambda o: o["lines"][0]["shipped"] == 3)
    shop.work_the_floor(warehouse)
    shop.until(split["id"], lambda o: o["status"] == "completed")

    shop.stock("BEAN", "DC-WEST", 3)  # the backorder is woken by the adjustment
    shop.stock("TEE", "DC-EAST", 1, reason="found")  # …and the short-picked unit's replacement
    shop.until(waiting["id"], lambda o: o["status"] == "allocated", timeout=30)
    shop.until(short["id"], lambda o: o["lines"][0]["reserved"] == 1, timeout=30)
    shop.work_the_floor(warehouse)
    for order in (split, waiting, short):
        done = shop.until(order["id"], lambda o: o["status"] == "completed")
        assert all(ln["shipped"] + ln["cancelled"] == ln["qty"] for ln in done["lines"])
        assert done["payment"]["captured"] == done["amounts"]["total"]
    r = shop.admin.get("/v1/orders", params={"status": "completed"})
    assert {o["id"] for o in r.json()["items"]} >= {split["id"], waiting["id"], short["id"]}
    _checks_clean(stack)


def _worker(stack: DevStack) -> psutil.Process:
    """The running worker process (waiting while the supervisor restarts a killed one)."""
    process = worker_process(stack)
    assert process is not None, "no worker process"
    return process


def test_orders_survive_a_killed_worker_and_complete_exactly_once(shop: Shop, stack: DevStack) -> None:
    warehouse = shop.key("warehouse")
    shop.stock("TEE", "DC-WEST", 40)
    ids = [shop.order("web", f"K-{i}", [("TEE", 2, 2500), ("MUG", 1, 1600)])["id"] for i in range(12)]
    _worker(stack).send_signal(signal.SIGKILL)  # while they are being recorded and sourced
    for order_id in ids:
        shop.until(order_id, lambda o: o["status"] == "allocated", timeout=90)
    kills = [
        threading.Timer(delay, lambda: _worker(stack).send_signal(signal.SIGKILL)) for delay in (0.5, 4.0)
    ]
    for timer in kills:  # in the middle of picking, packing and shipping
        timer.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        # A step refused or timed out while the worker was down: the next round retries it.
        with contextlib.suppress(AssertionError, httpx.HTTPError):
            shop.work_the_floor(warehouse)
            for order_id in ids:  # a parcel picked or packed when the worker died is taken up again
                for shp in shop.get(order_id)["shipments"]:
                    if shp["status"] in ("picked", "packed"):
                        shop.fulfil(warehouse, shp["id"], {})
        if all(shop.get(i)["status"] == "completed" for i in ids):
            break
        time.sleep(0.5)
    for timer in kills:
        timer.join()
    assert stack.stderr().count("worker exited") >= 3
    for order_id in ids:
        done = shop.get(order_id)
        assert done["status"] == "completed", (
            done["status"],
            done["shipments"],
            done["timeline"],
            [ln for ln in stack.stderr().splitlines() if order_id in ln and ("rror" in ln or "WARN" in ln)][
                -5:
            ],
        )
        assert [(ln["qty"], ln["shipped"]) for ln in done["lines"]] == [(2, 2), (1, 1)]
        shipped_events = [e for e in done["timeline"] if e["event"] == "shipped"]
        assert len(shipped_events) == len([s for s in done["shipments"] if s["status"] == "shipped"])
        assert done["payment"]["captured"] == done["amounts"]["total"]  # captured once, not twice
    _checks_clean(stack)
