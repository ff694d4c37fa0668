"""The order benchmark's users of the stack, through the async API client: a shop (admin,
one key per channel, a warehouse key) and the floor (a simulated warehouse and the
completion watcher). bench/lifecycle.py measures with them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import httpx

from bench.common import NYC_ADDRESS
from bench.stack import DevStack
from client import (
    ApiError,
    AsyncOmniflowClient,
    Attempt,
    Customer,
    NewChannel,
    NewLine,
    NewLocation,
    NewOrder,
    NewPayment,
    NewSku,
    Order,
    Package,
    PackLine,
    PickLine,
    StockAdjustment,
    Wave,
    WaveShipment,
)

PICK_WAIT_SECONDS = 1.0
PACKAGE = {"weight_g": 800, "length_mm": 300, "width_mm": 200, "height_mm": 100}
SKUS = [
    NewSku(code="TEE", name="Tee", unit_cost=600, price=2500),
    NewSku(code="FLASH", name="Limited sneaker", unit_cost=5000, price=12000),
]
LOCATIONS = [
    NewLocation(code="DC-EAST", name="East", type="dc", lat=40.7, lon=-74.2, ship_cost=450, priority=1),
    NewLocation(code="DC-WEST", name="West", type="dc", lat=34.1, lon=-117.7, ship_cost=380, priority=2),
]
CHANNELS = [
    NewChannel(code="web", type="web", locations=["DC-EAST", "DC-WEST"]),
    NewChannel(code="market", type="marketplace", locations=["DC-EAST", "DC-WEST"], sourcing_rule="cheapest"),
    NewChannel(code="app", type="web", locations=["DC-EAST"], sourcing_rule="priority"),
]


class Shop:
    """The stack as a channel and a warehouse use it. Each key has its own connections (up
    to 200), and writes carry an Idempotency-Key only where the API requires one, as this
    benchmark has always measured. With several API replicas every client takes turns over
    them (client/clients.py); `answers_by_api` counts the answers each gave."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.answers_by_api: Counter[str] = Counter()
        self._http: list[httpx.AsyncClient] = []
        self.admin = self._client(stack.admin_key)
        self.channel: dict[str, AsyncOmniflowClient] = {}
        self.warehouse: AsyncOmniflowClient | None = None
        self.warehouse_key = ""

    def _client(self, key: str) -> AsyncOmniflowClient:
        # httpcore walks every connection of a pool for each request it assigns (a syscall each
        # to see whether it expired): 200 connections spent 60 % of a flash sale's load
        # generator there. 64 is more than the API can use on this box (bench.open_loop.IN_FLIGHT).
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        http = httpx.AsyncClient(timeout=60.0, limits=limits)
        self._http.append(http)
        return AsyncOmniflowClient(
            self.stack.apis, key, timeout=60.0, idempotent_writes=False, http=http, observer=self._count
        )

    def _count(self, attempt: Attempt) -> None:
        if attempt.response is not None:
            self.answers_by_api[str(attempt.response.request.url.port)] += 1

    async def key(self, role: str, channel: str | None = None) -> AsyncOmniflowClient:
        made = await self.admin.create_api_key(role, channel=channel, name=f"bench {role} {channel or ''}")
        if role == "warehouse":
            self.warehouse_key = made.key
        return self._client(made.key)

    async def pick_work(self, seen: str, wait: float) -> tuple[list[Wave], str]:
        """The open pick work and its ETag, waiting up to `wait` s for it to differ from `seen`
        (a long poll: GET /v1/pick-tasks with If-None-Match); unchanged, ([], seen)."""
        headers = {"Authorization": f"Bearer {self.warehouse_key}", "If-None-Match": seen}
        response = await self._http[0].get(
            f"{self.stack.api}/v1/pick-tasks",
            params={"max_lines": 500, "wait": wait},
            headers=headers,
            timeout=wait + 30,
        )
        if response.status_code == 304:
            return [], seen
        response.raise_for_status()
        return [Wave.model_validate(w) for w in response.json()["items"]], response.headers.get("ETag", "")

    async def setup(self) -> None:
        for sku in SKUS:
            await self.admin.create_sku(sku)
        for location in LOCATIONS:
            await self.admin.create_location(location)
        for channel in CHANNELS:
            await self.admin.create_channel(channel)
        await self.adjust("TEE", "DC-EAST", 1_000_000)
        for code in ("web", "market", "app"):
            self.channel[code] = await self.key("channel", code)
        self.warehouse = await self.key("warehouse")

    async def adjust(self, sku: str, location: str, delta: int) -> None:
        adjustment = StockAdjustment(sku=sku, location=location, delta=delta, reason="initial")
        await self.admin.adjust_stock(adjustment, idempotency_key=f"bench-{uuid.uuid4().hex}")

    async def place(
        self, channel: str, external_id: str, sku: str, qty: int, **extra: Any
    ) -> tuple[str, float, datetime]:
        price = 2500
        body = NewOrder(
            channel=channel,
            external_id=external_id,
            customer=Customer(id=f"c-{external_id}", email="b@example.com"),
            ship_to=NYC_ADDRESS,
            lines=[NewLine(sku=sku, qty=qty, unit_price=price)],
            shipping_amount=500,
            tax_amount=200,
            payment=NewPayment(
                method="card", status="authorized", reference=external_id, amount=qty * price + 700
            ),
            **extra,
        )
        t0 = time.perf_counter()
        order = await self.channel[channel].create_order(body, idempotency_key=external_id)
        took = (time.perf_counter() - t0) * 1000
        return order.id, took, order.created_at

    async def buy(self, channel: str, external_id: str, sku: str, turned_away: Counter[str]) -> str | None:
        """One unit, no backorders (a flash-sale buyer): the order's id, or None when intake
        turned the buyer away (409 insufficient-stock; its lines' rules counted in `turned_away`)."""
        try:
            order_id, _, _ = await self.place(channel, external_id, sku, 1, allow_backorder=False)
        except ApiError as exc:
            if exc.slug != "insufficient-stock":
                raise
            turned_away.update(str(ln["rule"]) for ln in exc.extra.get("lines", []))
            return None
        return order_id

    async def until(self, order_id: str, statuses: tuple[str, ...], timeout: float = 300.0) -> Order:
        # 300 s: right after a flash sale the first order waited on is behind every other
        # buyer's workflow; on a shared, loaded machine that backlog outlasted 120 s.
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            order = await self.admin.get_order(order_id)
            if order.status in statuses:
                return order
            if time.monotonic() > deadline:
                raise TimeoutError(f"{order_id} stuck in {order.status}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    async def fulfil(self, shipment: WaveShipment) -> None:
        assert self.warehouse is not None
        sid = shipment.id
        await self.warehouse.pick_shipment(sid, [PickLine(sku=ln.sku, qty=ln.qty) for ln in shipment.lines])
        package = Package(**PACKAGE, lines=[PackLine(sku=ln.sku, qty=ln.qty) for ln in shipment.lines])
        await self.warehouse.pack_shipment(sid, [package])
        await self.warehouse.ship_shipment(sid, carrier="UPS", tracking=f"1Z-{sid}")

    async def close(self) -> None:
        for http in self._http:
            await http.aclose()


class Floor:
    """The simulated warehouse and the completion watcher: one loop polls `GET /v1/pick-tasks`
    and works every new shipment (pick, pack, ship) concurrently; another lists completed
    orders. Batch reads, as a warehouse and a channel would run them, so the benchmark does not
    load the API with one poll per order."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.started: set[str] = set()
        self.shipped_at: dict[str, float] = {}
        self.allocated_at: dict[str, float] = {}
        self.completed: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.completed_at: dict[str, float] = {}
        self.stages: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.in_flight: dict[str, datetime] = {}  # order id -> its created_at (server clock)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(self._pick_loop(), self._completion_loop())

    def stop(self) -> None:
        self._stop.set()

    async def _pick_loop(self) -> None:
        """Long-polls the pick work (it answers when the work changes: a new shipment, one
        picked), as a warehouse would rather than asking 20 times a second; a short wait so
        that `stop` is seen soon."""
        work: set[asyncio.Task[None]] = set()
        seen = ""
        while not self._stop.is_set():
            waves, seen = await self.shop.pick_work(seen, wait=PICK_WAIT_SECONDS)
            now = time.perf_counter()
            for shp in (s for wave in waves for s in wave.shipments):
                if shp.id not in self.started:
                    self.started.add(shp.id)
                    self.allocated_at.setdefault(shp.order_id, now)
                    task = asyncio.create_task(self._work(shp))
                    work.add(task)
                    task.add_done_callback(work.discard)
        await asyncio.gather(*work)

    async def _work(self, shp: WaveShipment) -> None:
        try:
            t0 = time.perf_counter()
            await self.shop.fulfil(shp)
            self.shipped_at[shp.order_id] = time.perf_counter()
            self.stages["pick_pack_ship"].append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            self.errors.append(f"{shp.id}: {exc!r}"[:200])

    async def _completion_loop(self) -> None:
        """Lists completed orders while an order that has shipped is not seen completed yet (an
        order completes with its last shipment; before that there is nothing to see)."""
        while not self._stop.is_set():
            shipped = [at for order_id, at in self.in_flight.items() if order_id in self.shipped_at]
            if not shipped:
                await asyncio.sleep(0.02)
                continue
            # Only orders at least as new as the oldest one still in flight: one short page.
            oldest = min(shipped)
            cursor = None
            while True:
                page = await self.shop.admin.list_orders(
                    status="completed", limit=500, created_from=oldest, cursor=cursor
                )
                now = time.perf_counter()
                for order in page.items:
                    event = self.completed[order.id]
                    if not event.is_set():
                        self.completed_at[order.id] = now
                        self.in_flight.pop(order.id, None)
                        event.set()
                cursor = page.next_cursor
                if not cursor:
                    break
            await asyncio.sleep(0.1)
