"""Sourcing an order: plan where each open unit ships from (domain.sourcing), reserve each
shipment through the inventory core, and backorder what no location can fill. One keyed
transaction; a reservation that loses a race to another order is planned again.

Each shipment's reservation goes through the worker's ReservationBatcher: concurrent orders
for the same SKUs (a flash sale) are decided together in one transaction under one
acquisition of the SKU locks, each with its own key, result and refusal; a cold SKU's
batch is of one and starts at once. The step's transaction takes no SKU lock: it holds the
order row while its reservation commits in its batch, then writes the shipments that ship
on it. If the step's transaction does not commit after its reservation did (the worker dies
in between), the next attempt finds that reservation attached to no shipment, gives its
units back and reserves under a new key: nothing is lost or held twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from activities.errors import business_outcomes
from activities.metrics import RESERVATIONS_REFUSED, after_commit
from activities.order_step import OrderStep, order_step
from domain.atp import AvailabilitySnapshot, channel_shortage_reason, kit_location_atp
from domain.errors import ReservationShortage
from domain.returns import NEW_ORDER_OUTCOMES
from domain.sourcing import OrderLine, Plan, Request, Site, plan_within_budget
from models import order_store as orders
from models import return_store as returns
from models import shipment_store as shipments
from models import stock
from models.availability import load_snapshot, lock_skus_with_components
from models.stock.batcher import ReservationBatcher
from models.stock.operations import OperationResult
from runtime.logging import get_logger
from workflows.contracts import SOURCE_ORDER, Sourced, SourceOrder

log = get_logger("omniflow.orders")

RACE_ATTEMPTS = 8
T = TypeVar("T")


class SourcingSteps:
    engine: AsyncEngine
    # On its own engine: a step waits for it holding one of `engine`'s. None (settings
    # `reservation_batching` off): each step reserves in its own transaction, as before.
    batcher: ReservationBatcher | None

    @SOURCE_ORDER.implement
    async def source_order(self, inp: SourceOrder) -> Sourced:
        """Source every open unit not yet reserved, reserve each shipment, and backorder what
        no location can fill. `avoid`: locations that came up short on a pick for this order
        (their count is in doubt): the remainder is sourced elsewhere, else it waits."""
        key = f"{inp.order_id}:{inp.step}"
        return await self.sourcing_step(inp.order_id, key, lambda step: self._source(step, set(inp.avoid)))

    async def sourcing_step(self, order_id: str, key: str, body: Callable[[OrderStep], Awaitable[T]]) -> T:
        """`body` in one keyed step (`key`) that sources: run again from the start, in a new
        transaction, when a reservation loses a race to another order or the transaction is
        a deadlock victim."""
        async with business_outcomes():  # outside the retry loop: a lost race is not a refusal
            for attempt in range(RACE_ATTEMPTS):
                try:
                    async with order_step(self.engine, order_id, key, refusals=False) as step:
                        return await body(step)
                except ReservationShortage:
                    log.info("sourcing lost a race; planning again", order_id=order_id, attempt=attempt)
                except DBAPIError as exc:  # a deadlock victim: the whole step is retried
                    if "deadlock" not in str(exc).lower():
                        raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise ApplicationError("sourcing kept losing races; retrying", type="sourcing_contended")

    async def source_in(self, step: OrderStep, source_step: str) -> Sourced:
        """Source the order as the keyed step `source_step`, in `step`'s transaction."""
        return await self._source(await step.then(f"{step.order_id}:{source_step}"), set())

    async def _source(self, step: OrderStep, avoid: set[str]) -> Sourced:
        if step.done is not None:
            d = step.done
            return Sourced(await step.snapshot(), d["new_shipments"], d["backordered"], d["unfillable"])
        order = step.order
        lines = await orders.lines_to_source(step.conn, order.id)
        want = {r.line: orders.line_qty(r).unassigned + r.backordered for r in lines if r.released}
        want = {line: n for line, n in want.items() if n > 0}
        if order.status in ("cancelled", "completed") or not want:
            await step.record("sourced", new_shipments=[], backordered=0, unfillable={})
            return Sourced(await step.snapshot(), [], 0, {})
        by_line = {r.line: r for r in lines}
        # only an order a return placed (paid by it) can have units held for it: no query for the rest
        promised = order.payment_method in NEW_ORDER_OUTCOMES
        held = await returns.held_for(step.conn, order.id) if promised else None
        if held is not None:
            return await self._take_held(step, held, want, by_line)
        taken = await self._give_back_unattached(step)
        request, budget, suppliers, snap = await self._request(step, want, by_line, avoid)
        plan = plan_within_budget(request, budget)
        if self.batcher is None:  # every SKU lock of the step at once, sorted (models.stock)
            await lock_skus_with_components(step.conn, {by_line[line].sku for line in want})
        new_ids = await self._make_shipments(step, plan, by_line, suppliers, taken)
        qty = {line: orders.line_qty(r) for line, r in by_line.items()}
        for shp in [*plan.shipments, *plan.dropship]:
            for line, n in shp.lines:
                qty[line] = qty[line].reserve(n)
        for line, _ in plan.backordered:
            qty[line] = qty[line].backorder(qty[line].unassigned)  # unassigned units join those waiting
        backordered = sum(q.backordered for q in qty.values())
        for line, q in qty.items():
            await step.write_line(line, q)
        await self._refused_lines(step, plan, snap, want, by_line)
        view = await step.refresh(on_hold=False, write=False)
        unfillable = {line: n for line, n in plan.unfillable}
        event = "allocated" if new_ids else ("backordered" if backordered else "sourced")
        await step.record_status(
            view,
            event,
            new_shipments=new_ids,
            backordered=backordered,
            unfillable=unfillable,
            status=view.status,
            shipments=[{"location": s.location, "lines": dict(s.lines)} for s in plan.shipments],
        )
        return Sourced(view.snapshot(), new_ids, backordered, unfillable)

    async def _refused_lines(
        self,
        step: OrderStep,
        plan: Plan,
        snap: AvailabilitySnapshot,
        want: dict[str, int],
        by_line: dict[str, Any],
    ) -> None:
        """A timeline event per line that could not be filled now, naming the rule that refused
        it (domain.errors.ShortageReason) and what happens to its units."""
        outcomes = [(plan.unfillable, "cancelled"), (plan.backordered, "backordered")]
        for lines, outcome in outcomes:
            for line, n in lines:
                sku = by_line[line].sku
                reason = channel_shortage_reason(snap, step.order.channel, sku, want[line])
                await step.note(
                    "line_refused", line=line, sku=sku, qty=n, reason=str(reason), outcome=outcome
                )
                refused = RESERVATIONS_REFUSED.labels(str(reason), outcome)
                after_commit(step.conn, refused.inc)

    async def _take_held(
        self, step: OrderStep, held: Any, want: dict[str, int], by_line: dict[str, Any]
    ) -> Sourced:
        """An order a return promised (an exchange or replacement): the units the return
        reserved for it at authorization become its shipment, so nothing can take them."""
        order = step.order
        shipment_id = f"{order.id}-S{await shipments.count(step.conn, order.id) + 1}"
        lines = [(line, by_line[line].sku, n) for line, n in sorted(want.items())]
        new = shipments.NewShipment(shipment_id, order.id, held.location, "stock", order.promise, lines)
        await shipments.insert(step.conn, replace(new, reservation_key=held.reservation_key))
        await returns.adopt(step.conn, order.id)
        for line, n in want.items():
            await step.write_line(line, orders.line_qty(by_line[line]).reserve(n))
        view = await step.refresh(on_hold=False, write=False)
        shipped_from = [{"location": held.location, "lines": dict(want)}]
        await step.record_status(
            view,
            "allocated",
            new_shipments=[shipment_id],
            backordered=0,
            unfillable={},
            status=view.status,
            shipments=shipped_from,
            held_by=held.reservation_key,
        )
        return Sourced(view.snapshot(), [shipment_id], 0, {})

    async def _request(
        self,
        step: OrderStep,
        want: dict[str, int],
        by_line: dict[str, Any],
        avoid: set[str],
    ) -> tuple[Request, dict[str, int], dict[str, str], AvailabilitySnapshot]:
        """What sourcing decides on: the lines, the channel's sites (less `avoid`) and the ATP
        of each SKU at each; with the channel's budget per SKU, the drop-ship suppliers and the
        snapshot it was computed from."""
        order = step.order
        rule, sites, dropship, suppliers = await self._sites(step, order.channel)
        sites = [site for site in sites if site.code not in avoid]
        skus = {by_line[line].sku for line in want}
        snap = await load_snapshot(step.conn, skus)
        atp: dict[tuple[str, str], int] = {}
        for site in sites:
            for sku in skus:
                recipe = snap.recipes.get(sku)
                if recipe is None:
                    atp[(site.code, sku)] = snap.location_atp(order.channel, sku, site.code)
                else:
                    components = {c: snap.location_atp(order.channel, c, site.code) for c in recipe}
                    atp[(site.code, sku)] = kit_location_atp(components, recipe)
        ship_to = order.ship_to or {}
        point = None
        if ship_to.get("lat") is not None and ship_to.get("lon") is not None:
            point = (float(ship_to["lat"]), float(ship_to["lon"]))
        request = Request(
            lines=[
                OrderLine(line, by_line[line].sku, n, by_line[line].kind == "kit")
                for line, n in sorted(want.items())
            ],
            sites=sites,
            atp=atp,
            rule=rule,
            ship_to=point,
            allow_split=order.allow_split,
            allow_backorder=order.allow_backorder,
            dropship_skus={s: loc for s, loc in dropship.items() if s in skus},
        )
        return request, {sku: snap.atp(order.channel, sku) for sku in skus}, suppliers, snap

    async def _sites(
        self, step: OrderStep, channel: str
    ) -> tuple[str, list[Site], dict[str, str], dict[str, str]]:
        """The channel's sourcing rule and shipping locations, the SKUs drop-shipped (sku ->
        drop-ship location) and who ships from each drop-ship location (location -> supplier)."""
        rows = await orders.shipping_locations(step.conn, channel)
        rule = str(rows[0].sourcing_rule) if rows else await orders.sourcing_rule(step.conn, channel)
        sites = [
            Site(r.code, r.lat, r.lon, r.ship_cost, r.priority, dropship=r.type == "dropship") for r in rows
        ]
        suppliers = {r.code: r.supplier for r in rows if r.type == "dropship" and r.supplier}
        dropship: dict[str, str] = {}
        for r in rows:
            if r.code in suppliers:
                for sku in await orders.dropship_skus(step.conn, r.supplier):
                    dropship.setdefault(sku, r.code)
        return rule, sites, dropship, suppliers

    async def _give_back_unattached(self, step: OrderStep) -> set[str]:
        """Release what an earlier attempt of this order reserved but never attached to a
        shipment (its step's transaction did not commit); answers every such key, so this
        attempt's reservations take new ones."""
        if self.batcher is None:  # reserved in the step's own transaction: none can be left over
            return set()
        found = await shipments.unattached_reservations(step.conn, step.order_id, f"{step.order_id}:reserve:")
        for res in found:
            if res.holding:
                log.info("giving back a reservation no shipment took", order_id=step.order_id, key=res.key)
                await self._batched(
                    self.batcher.settle(f"{res.key}:unattached", res.key, res.skus, consume=False)
                )
        return {res.key for res in found}

    @staticmethod
    async def _batched(call: Any) -> OperationResult:
        """Wait for a batcher call; cancelled meanwhile, still wait for its batch before letting
        go of the order row, so the next attempt sees whether it committed."""
        pending = asyncio.ensure_future(call)
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await pending
            raise

    async def _reserve(
        self, step: OrderStep, key: str, lines: Sequence[stock.ReserveLine]
    ) -> OperationResult:
        channel, ref = step.order.channel, step.order_id
        if self.batcher is None:
            return await stock.reserve(step.conn, key, channel, list(lines), ref=ref)
        return await self._batched(self.batcher.reserve(key, channel, lines, ref=ref))

    async def _make_shipments(
        self,
        step: OrderStep,
        plan: Plan,
        by_line: dict[str, Any],
        suppliers: dict[str, str],
        taken: set[str],
    ) -> list[str]:
        """One shipment per planned location, stock ones reserved through the inventory core
        (the batcher), each under a key no earlier attempt used (`taken`)."""
        order = step.order
        existing = await shipments.count(step.conn, order.id)
        new_ids: list[str] = []
        planned = [(shp, "stock") for shp in plan.shipments] + [(shp, "dropship") for shp in plan.dropship]
        for count, (shp, kind) in enumerate(planned, start=existing + 1):
            shipment_id = f"{order.id}-S{count}"
            lines = [(line, by_line[line].sku, n) for line, n in shp.lines]
            new = shipments.NewShipment(shipment_id, order.id, shp.location, kind, order.promise, lines)
            if kind == "stock":
                key = _fresh_key(f"{order.id}:reserve:{shipment_id}", taken)
                new = replace(new, reservation_key=key)
                reserve = [stock.ReserveLine(line, sku, shp.location, n) for line, sku, n in lines]
                await self._reserve(step, key, reserve)
            else:
                new = replace(new, supplier=suppliers[shp.location])
            await shipments.insert(step.conn, new)
            new_ids.append(shipment_id)
        return new_ids


def _fresh_key(key: str, taken: set[str]) -> str:
    """`key`, or `key.1`, `key.2`, … when an earlier attempt's reservation (given back) has it."""
    n, fresh = 0, key
    while fresh in taken:
        n += 1
        fresh = f"{key}.{n}"
    return fresh
