"""The people and systems `omniflow simulate` plays, each through the API client with the key
its role has: the channels (orders, cancels, returns), the warehouse floor (pick, pack, ship,
short picks, return parcels). The approver desk and the purchasing office are in
cli/simulate_office.py. Every write carries an Idempotency-Key made of the business key and
the step, so a retried request is never taken twice.

Each actor only carries out the plan (cli/simulate_plan.py); the one clock (`Clock`) says when,
and no step starts once the run is stopping (the duration is up, or Ctrl-C): steps in flight
finish, so what the tally counts is what the API did."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from cli.simulate_plan import SHIPPING, TAX, OrderStory, Plan
from client import (
    Address,
    ApiError,
    AsyncOmniflowClient,
    Customer,
    InspectedLine,
    NewLine,
    NewOrder,
    NewPayment,
    NewReturn,
    NewReturnLine,
    Order,
    Package,
    PackLine,
    PickLine,
    ReturnedLine,
    WaveShipment,
)

T = TypeVar("T")
SETTLED = frozenset({"completed", "cancelled", "partially_returned", "returned"})
ADDRESSES = (
    Address(name="Ada Lovelace", line1="1 Main St", city="New York", region="NY", postal_code="10001",
            country="US", lat=40.75, lon=-73.99),
    Address(name="Alan Kay", line1="500 Market St", city="San Francisco", region="CA", postal_code="94105",
            country="US", lat=37.79, lon=-122.40),
    Address(name="Grace Hopper", line1="233 S Wacker Dr", city="Chicago", region="IL", postal_code="60606",
            country="US", lat=41.88, lon=-87.64),
)  # fmt: skip # kept aligned: one address a row
BAD_ADDRESS = Address(
    name="Ada Lovelace", line1="1 Main St", city="New York", region="ZZ", postal_code="1011", country="US"
)
ABROAD = Address(
    name="G. Hopper", line1="5 Av. Anatole France", city="Paris", postal_code="75007", country="FR"
)


class Clock:
    """Seconds since the start; `until(t)` sleeps to `t` unless the run stops first. The run
    stops itself at `duration`."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.started = time.monotonic()
        self.stopped = asyncio.Event()
        self.reason = ""
        self.last_step = 0.0  # when the last step started (never after the stop)

    def now(self) -> float:
        return time.monotonic() - self.started

    def stop(self, reason: str) -> None:
        if not self.stopped.is_set():
            self.reason = reason
            self.stopped.set()

    def running(self) -> bool:
        if not self.stopped.is_set() and self.now() >= self.duration:
            self.stop("duration")
        return not self.stopped.is_set()

    async def until(self, t: float) -> bool:
        """Sleep until `t` (or the end of the run); True if the run is still going then."""
        wait = min(t, self.duration) - self.now()
        if wait > 0 and self.running():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), wait)
        return self.running()


@dataclass
class Cast:
    """The run's keys: an admin, one channel key a channel, the warehouse, the approver desk."""

    admin: AsyncOmniflowClient
    channels: dict[str, AsyncOmniflowClient]
    warehouse: AsyncOmniflowClient
    approver: AsyncOmniflowClient
    key_ids: dict[str, str] = field(default_factory=dict)  # role (or channel) -> key id


@dataclass
class Run:
    """One run of a plan: its tag (in every business id it makes), the cast, the clock and the
    tally of what each actor did (`placed:web`, `shipped`, `decided:fraud_review`, …; a step
    the API refused counts as `<step>!<status>`)."""

    plan: Plan
    tag: str
    cast: Cast
    clock: Clock
    tally: Counter[str] = field(default_factory=Counter)
    orders: dict[str, Order] = field(default_factory=dict)  # as the watcher last read them
    settled: dict[str, asyncio.Event] = field(default_factory=dict)
    stories: dict[str, OrderStory] = field(default_factory=dict)  # order id -> its story

    def order_id(self, story: OrderStory) -> str:
        return f"order-{story.channel}-{self.external_id(story)}"

    def external_id(self, story: OrderStory) -> str:
        return f"{self.tag}-{story.number:05d}"

    def note(self, order: Order) -> None:
        """The order as the API answered it just now (the return stories wait on these)."""
        self.orders[order.id] = order
        if order.status in SETTLED:
            self.settled_event(order.id).set()

    def settled_event(self, order_id: str) -> asyncio.Event:
        return self.settled.setdefault(order_id, asyncio.Event())

    async def until_settled(self, order_id: str) -> Order | None:
        """The order once the watcher saw it completed or cancelled (None: the run stopped first)."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self.settled_event(order_id), self.clock.stopped)]
        left = max(0.0, self.clock.duration - self.clock.now())
        await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        return self.orders.get(order_id) if self.clock.running() else None

    async def act(self, what: str, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T | None:
        """One step, unless the run is stopping: counted under `what` when the API took it,
        under `what!status` when it refused (None then)."""
        if not self.clock.running():
            return None
        self.clock.last_step = self.clock.now()
        try:
            value = await call(*args, **kwargs)
        except ApiError as exc:
            self.tally[f"{what}!{exc.status}"] += 1
            return None
        except httpx.TransportError:
            self.tally[f"{what}!unanswered"] += 1
            return None
        self.tally[what] += 1
        return value

    async def poll(
        self, read: Callable[[], Awaitable[T]], done: Callable[[T], bool], every: float = 1.0
    ) -> T | None:
        """Read until `done` holds (None if the run stopped first or the read failed)."""
        while self.clock.running():
            try:
                value = await read()
            except (ApiError, httpx.TransportError):
                value = None
            if value is not None and done(value):
                return value
            if not await self.clock.until(self.clock.now() + every):
                return None
        return None


# -- channels ------------------------------------------------------------------------------


def new_order(run: Run, story: OrderStory) -> NewOrder:
    """The order a channel sends for `story`; its trouble is in the data, as in real life."""
    paid = story.trouble != "payment"
    return NewOrder(
        channel=story.channel,
        external_id=run.external_id(story),
        customer=Customer(id=f"{run.tag}-{story.channel}-c{story.customer}", email="shopper@example.com"),
        ship_to=BAD_ADDRESS if story.trouble == "address" else ADDRESSES[story.customer % len(ADDRESSES)],
        billing_address=ABROAD if story.trouble == "fraud" else None,
        lines=[NewLine(sku=ln.sku, qty=ln.qty, unit_price=ln.unit_price) for ln in story.lines],
        shipping_amount=SHIPPING,
        tax_amount=TAX,
        payment=NewPayment(
            method="card",
            status="authorized" if paid else "pending",
            amount=story.total if paid else 0,
            reference=f"psp-{run.external_id(story)}",
        ),
        promise="express" if story.promise == "express" else "standard",
        allow_backorder=not story.flash,
    )


async def order_story(run: Run, story: OrderStory) -> None:
    """A customer orders on a channel; maybe cancels; maybe sends something back."""
    if not await run.clock.until(story.at):
        return
    order_id = run.order_id(story)
    channel = run.cast.channels[story.channel]
    body = new_order(run, story)
    placed = await run.act(
        f"placed:{story.channel}", channel.create_order, body, idempotency_key=body.external_id
    )
    if placed is None:
        return
    run.stories[order_id] = story
    run.tally["placed_flash"] += story.flash
    at = run.clock.now()
    if story.cancel_after is not None and await run.clock.until(at + story.cancel_after):
        key = f"{order_id}:cancel"
        await run.act("cancelled", channel.cancel_order, order_id, "customer asked", idempotency_key=key)
    if story.ret is not None:
        await return_story(run, story, order_id)
    else:
        await run.until_settled(order_id)  # the run lasts until its orders are done (or its time is up)


async def return_story(run: Run, story: OrderStory, order_id: str) -> None:
    """Once the order completed: a return asked for, its parcel received, then inspected."""
    ret = story.ret
    assert ret is not None
    order = await run.until_settled(order_id)
    if order is None or order.status != "completed":
        return
    if not await run.clock.until(run.clock.now() + ret.after):
        return
    number = f"{run.tag}-R{story.number:05d}"
    line = NewReturnLine(sku=ret.sku, qty=1, reason=ret.reason)
    body = NewReturn.model_validate(
        {"number": number, "order": order_id, "lines": [line], "outcome": ret.outcome}
    )
    channel = run.cast.channels[story.channel]
    if await run.act("returns_created", channel.create_return, body, idempotency_key=number) is None:
        return
    moving = await run.poll(lambda: channel.get_return(number), lambda r: r.status != "requested")
    if moving is None or moving.status != "in_transit":
        return  # rejected (or the run ended while it waited for an approver)
    shipped = [s for s in order.shipments if s.status == "shipped"]
    here = next(
        (s.location for s in shipped if any(ln.sku == ret.sku for ln in s.lines)), shipped[0].location
    )
    warehouse = run.cast.warehouse
    if not await run.clock.until(run.clock.now() + ret.receive_after):
        return
    parcel = [ReturnedLine(sku=ret.sku, qty=1)]
    if (
        await run.act(
            "returns_received",
            warehouse.receive_return,
            number,
            here,
            parcel,
            idempotency_key=f"{number}:receive",
        )
        is None
    ):
        return
    if await run.clock.until(run.clock.now() + ret.inspect_after):
        seen = InspectedLine.model_validate(
            {"sku": ret.sku, "qty": 1, "condition": ret.condition, "disposition": ret.disposition}
        )
        await run.act(
            "returns_inspected", warehouse.inspect_return, number, [seen], idempotency_key=f"{number}:inspect"
        )


# -- the warehouse floor ---------------------------------------------------------------------


class Floor:
    """Polls the pick tasks and works each shipment of this run's orders a while after it
    appears (the plan's `pick_after`): pick (short once, when the plan says so), pack, ship.
    Shipments of other orders (the demo's, a person's) are left for people."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.started: set[str] = set()
        self.shorted: set[str] = set()  # orders that had their short pick
        self.work: set[asyncio.Task[None]] = set()

    async def loop(self, every: float = 1.0) -> None:
        run = self.run
        while run.clock.running():
            try:
                waves = (await run.cast.warehouse.pick_tasks(max_lines=500)).items
            except (ApiError, httpx.TransportError):
                waves = []
            for shipment in (s for wave in waves for s in wave.shipments):
                story = run.stories.get(shipment.order_id)
                if story is None or shipment.id in self.started:
                    continue
                self.started.add(shipment.id)
                task = asyncio.create_task(self.fulfil(story, shipment, run.clock.now() + story.pick_after))
                self.work.add(task)
                task.add_done_callback(self.work.discard)
            await run.clock.until(run.clock.now() + every)
        await asyncio.gather(*self.work)

    async def fulfil(self, story: OrderStory, shipment: WaveShipment, at: float) -> None:
        run, warehouse, sid = self.run, self.run.cast.warehouse, shipment.id
        if not await run.clock.until(at):
            return
        units: dict[str, int] = {}
        for ln in shipment.lines:
            units[ln.sku] = units.get(ln.sku, 0) + ln.qty
        short = story.short_pick and shipment.order_id not in self.shorted
        if short:
            self.shorted.add(shipment.order_id)
            first = next(iter(units))
            units[first] -= 1
        lines = [PickLine(sku=sku, qty=qty) for sku, qty in units.items()]
        picked = await run.act(
            "short_picked" if short else "picked",
            warehouse.pick_shipment,
            sid,
            lines,
            idempotency_key=f"{sid}:pick",
        )
        if picked is None or picked.status != "picked":
            return
        contents = [PackLine(sku=sku, qty=qty) for sku, qty in units.items() if qty > 0]
        n = sum(units.values())
        box = Package(
            weight_g=min(30_000, 300 + 250 * n), length_mm=500, width_mm=400, height_mm=300, lines=contents
        )
        service = "express" if story.promise == "express" else "ground"
        packed = await run.act(
            "packed", warehouse.pack_shipment, sid, [box], service=service, idempotency_key=f"{sid}:pack"
        )
        if packed is not None:
            await run.act(
                "shipped",
                warehouse.ship_shipment,
                sid,
                carrier="UPS",
                service=service,
                tracking=f"1Z{sid[-12:]}",
                idempotency_key=f"{sid}:ship",
            )
