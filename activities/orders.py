"""Order steps. Each activity is one transaction that makes the business change (stock,
payment, ledger), updates the read model and appends the timeline event whose UNIQUE key
`"{workflow_id}:{step}"` is the step's idempotency record: a retried activity finds its
step done and answers what it answered the first time.

Locks, always in this order: the order's advisory lock (serializes the steps of one order),
then the SKU locks (models.stock, before the transaction's first write), then rows."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import business_outcomes
from activities.exceptions import close_exception_row
from domain import holds as hold_rules
from domain import orders as rules
from domain import waves
from domain.atp import kit_location_atp
from domain.errors import DomainError, InvalidStockChange, ReservationShortage
from domain.posting import lines_for
from domain.sourcing import OrderLine as SourceLine
from domain.sourcing import Request, Site, source
from models import stock
from models.availability import load_snapshot, lock_skus_with_components
from models.finance import Posting, post
from models.payments import (
    PaymentDeclined,
    PaymentGateway,
    authorize_payment,
    capture_payment,
    refund_payment,
    void_payment,
)
from runtime.logging import get_logger
from workflows.contracts import (
    CancelRequest,
    HoldSettled,
    LineSnap,
    OrderSnapshot,
    PackRequest,
    Picked,
    PickRequest,
    Recorded,
    Resolution,
    ShipmentLineSnap,
    ShipmentSnap,
    ShipRequest,
    Sourced,
)

log = get_logger("omniflow.orders")


ORDER_LOCK = text("SELECT * FROM sales_order WHERE id = :id FOR NO KEY UPDATE")
_INSERT_EVENT = (
    "INSERT INTO order_event (order_id, key, event, detail, at) VALUES (:o, :k, :e, CAST(:d AS jsonb), now())"
)
EVENT = text(_INSERT_EVENT)
EVENT_ONCE = text(_INSERT_EVENT + " ON CONFLICT (key) DO NOTHING")
# The order as the workflow sees it, in one statement (a step used to read it in eight).
ORDER_VIEW = text(
    "SELECT o.status, o.payment_status,"
    " EXISTS (SELECT 1 FROM exception e WHERE e.subject_type = 'order' AND e.subject_id = o.id"
    "   AND e.status = 'open' AND e.kind = ANY(:holds)) AS holding,"
    " coalesce((SELECT json_agg(json_build_array(l.line, l.sku, l.qty, l.reserved, l.backordered, l.shipped,"
    "   l.cancelled, l.returned) ORDER BY length(l.line), l.line) FROM order_line l WHERE l.order_id = o.id),"
    "   '[]') AS lines,"
    " coalesce((SELECT json_agg(json_build_array(s.id, s.location, s.kind, s.status,"
    "   coalesce((SELECT json_agg(json_build_array(sl.line, sl.sku, sl.qty, sl.picked)"
    "     ORDER BY length(sl.line), sl.line) FROM shipment_line sl WHERE sl.shipment_id = s.id), '[]'))"
    "   ORDER BY s.created_at, s.id) FROM shipment s WHERE s.order_id = o.id), '[]') AS shipments"
    " FROM sales_order o WHERE o.id = :id"
)


class OrderStepRefused(DomainError):
    """A warehouse or customer-service step the order cannot take now (a 409 for the API)."""

    code = "order_step_refused"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self._details = details

    def __str__(self) -> str:
        return self.message

    def details(self) -> dict[str, object]:
        return dict(self._details)


# -- reading -------------------------------------------------------------------------


async def _lock_order(conn: AsyncConnection, order_id: str) -> Any:
    """Serialize the steps of one order: the order row, locked until commit. NO KEY UPDATE so
    rows that reference the order (events, shipments) can still be inserted by others."""
    row = (await conn.execute(ORDER_LOCK, {"id": order_id})).first()
    if row is None:
        raise ApplicationError(f"order {order_id} is not recorded", type="unknown_order", non_retryable=True)
    return row


async def _done(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    found = (await conn.execute(text("SELECT detail FROM order_event WHERE key = :k"), {"k": key})).first()
    return dict(found.detail) if found is not None else None


async def _event(
    conn: AsyncConnection, order_id: str, key: str | None, event: str, *, once: bool = False, **detail: Any
) -> None:
    """Add to the order's timeline; the key makes the step's effects once-only. `once`: a key
    already there is fine (nothing is added)."""
    await conn.execute(
        EVENT_ONCE if once else EVENT,
        {"o": order_id, "k": key, "e": event, "d": json.dumps(detail, default=str)},
    )


async def _lines(conn: AsyncConnection, order_id: str) -> list[Any]:
    return list(
        await conn.execute(
            text("SELECT * FROM order_line WHERE order_id = :o ORDER BY length(line), line"), {"o": order_id}
        )
    )


async def _shipments(conn: AsyncConnection, order_id: str) -> list[tuple[Any, list[Any]]]:
    heads = list(await conn.execute(
        text("SELECT * FROM shipment WHERE order_id = :o ORDER BY created_at, id"), {"o": order_id}))  # fmt: skip
    lines: dict[str, list[Any]] = defaultdict(list)
    for r in await conn.execute(
        text("SELECT * FROM shipment_line WHERE shipment_id = ANY(:ids) ORDER BY length(line), line"),
        {"ids": [h.id for h in heads]},
    ):
        lines[r.shipment_id].append(r)
    return [(h, lines[h.id]) for h in heads]


@dataclass
class _View:
    """One read of the order (ORDER_VIEW): what a step's status and snapshot are made of."""

    order_id: str
    status: str
    payment_status: str
    holding: bool  # a hold exception of the order is open
    lines: list[list[Any]]  # [line, sku, qty, reserved, backordered, shipped, cancelled, returned]
    shipments: list[list[Any]]  # [id, location, kind, status, [[line, sku, qty, picked], ...]]

    def quantities(self) -> list[rules.LineQty]:
        return [rules.LineQty(*ln[2:8]) for ln in self.lines]

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            order_id=self.order_id,
            status=self.status,
            payment_status=self.payment_status,
            lines=[LineSnap(*ln[:7]) for ln in self.lines],
            shipments=[
                ShipmentSnap(sid, location, kind, status, [ShipmentLineSnap(*sl) for sl in lines])
                for sid, location, kind, status, lines in self.shipments
            ],
        )


async def _view(conn: AsyncConnection, order_id: str) -> _View:
    row = (await conn.execute(ORDER_VIEW, {"id": order_id, "holds": list(hold_rules.HOLD_ORDER)})).one()
    return _View(order_id, row.status, row.payment_status, bool(row.holding), row.lines, row.shipments)


async def order_snapshot(conn: AsyncConnection, order_id: str) -> OrderSnapshot:
    return (await _view(conn, order_id)).snapshot()


def _qty(r: Any) -> rules.LineQty:
    return rules.LineQty(r.qty, r.reserved, r.backordered, r.shipped, r.cancelled, r.returned)


def _priced(lines: Iterable[Any]) -> list[rules.PricedLine]:
    return [rules.PricedLine(r.line, r.qty, r.unit_price) for r in lines]


async def _write_line(conn: AsyncConnection, order_id: str, line: str, q: rules.LineQty) -> None:
    if not q.check():
        raise InvalidStockChange(f"order line {line}: {', '.join(q.problems())}")
    await conn.execute(
        text(
            "UPDATE order_line SET reserved = :r, backordered = :b, shipped = :s, cancelled = :c,"
            " backordered_since = CASE WHEN :b = 0 THEN NULL ELSE coalesce(backordered_since, now()) END"
            " WHERE order_id = :o AND line = :l"
        ),
        {"r": q.reserved, "b": q.backordered, "s": q.shipped, "c": q.cancelled, "o": order_id, "l": line},
    )


async def _refresh_status(conn: AsyncConnection, order_id: str, *, on_hold: bool | None = None) -> _View:
    """The order's status from its lines (domain.orders.order_status_from_lines), written to
    the read model; answers the order as it now stands. `on_hold` None: held while any hold
    exception of the order is open."""
    view = await _view(conn, order_id)
    picking = any(shp[3] in ("picked", "packed") for shp in view.shipments)
    view.status = rules.order_status_from_lines(
        view.quantities(), view.holding if on_hold is None else on_hold, picking=picking,
        settled=view.status == "completed",
    )  # fmt: skip
    await conn.execute(
        text("UPDATE sales_order SET status = :s, updated_at = now() WHERE id = :id"),
        {"s": view.status, "id": order_id},
    )
    return view


# -- payments --------------------------------------------------------------------------


async def _take_payment(
    conn: AsyncConnection,
    gateway: PaymentGateway,
    order: Any,
    key: str,
    status: str,
    amount: int,
    method: str,
) -> str:
    """Record the channel's payment: authorize on our gateway, and capture it all when the
    channel says it is captured (revenue is then recognized at order time). Returns the new
    payment status; a decline is recorded and answered as `declined`."""
    total = order.merchandise + order.shipping_amount + order.tax_amount
    try:
        payment_id = await authorize_payment(
            conn, gateway, f"{key}:authorize", order.id, method or "card", amount, order.currency
        )
        captured = 0
        if status == "captured":
            await capture_payment(
                conn, gateway, f"{key}:capture", payment_id, total, order.tax_amount,
                revenue=order.merchandise, shipping=order.shipping_amount, channel=order.channel,
            )  # fmt: skip
            captured = total
    except PaymentDeclined:
        await conn.execute(
            text("UPDATE sales_order SET payment_status = 'declined' WHERE id = :id"), {"id": order.id}
        )
        return "declined"
    await conn.execute(
        text("UPDATE sales_order SET payment_status = :s, payment_id = :p, captured = :c, payment_amount = :a "
             "WHERE id = :id"),
        {"s": status, "p": payment_id, "c": captured, "a": amount, "id": order.id},
    )  # fmt: skip
    return status


# -- stock -----------------------------------------------------------------------------


class OrderActivities:
    def __init__(self, engine: AsyncEngine, gateway: PaymentGateway) -> None:
        self.engine = engine
        self.gateway = gateway

    # -- record ----------------------------------------------------------------------

    @activity.defn(name="record_order")
    async def record_order(self, order_id: str, source_step: str = "") -> Recorded:
        """Take the payment the channel reports, assess the holds (address, payment, fraud)
        and mark pre-order lines as waiting for their release date. With `source_step`, an
        order that nothing holds is sourced right after, in a second transaction keyed by that
        step (the SKU locks must come before a transaction's first write, and recording writes
        the payment): one Temporal round trip instead of two, each transaction still once."""
        recorded = await self._record(order_id)
        if source_step and not recorded.holds and not recorded.release_at:
            sourced = await self.source_order(order_id, source_step, [])
            return Recorded(sourced.snapshot, [], {}, "", sourced=sourced)
        return recorded

    async def _record(self, order_id: str) -> Recorded:
        key = f"{order_id}:record"
        async with business_outcomes(), self.engine.begin() as conn:
            order = await _lock_order(conn, order_id)
            done = await _done(conn, key)
            if done is not None:
                return Recorded(await order_snapshot(conn, order_id), done["holds"], done["details"],
                                done.get("release_at", ""))  # fmt: skip
            payment_status = order.payment_status
            if order.payment_reported in ("authorized", "captured") and order.payment_amount > 0:
                payment_status = await _take_payment(
                    conn,
                    self.gateway,
                    order,
                    key,
                    order.payment_reported,
                    order.payment_amount,
                    order.payment_method,
                )
            ship_to = hold_rules.address_from(order.ship_to)
            problems = hold_rules.validate_address(ship_to)
            billing = hold_rules.address_from(order.billing_address) if order.billing_address else None
            country_differs, postal_differs = hold_rules.billing_differences(ship_to, billing)
            history = (await conn.execute(
                text("SELECT count(*) FILTER (WHERE created_at > now() - interval '24 hours') AS day, count(*) AS ever "
                     "FROM sales_order WHERE customer_id = :c AND channel = :ch"),
                {"c": order.customer_id, "ch": order.channel})).one()  # fmt: skip
            total = order.merchandise + order.shipping_amount + order.tax_amount
            fraud = hold_rules.fraud_score(hold_rules.FraudSignals(
                order_value=total, billing_country_differs=country_differs, billing_postal_differs=postal_differs,
                orders_last_24h=int(history.day), first_time_customer=int(history.ever) <= 1,
                express=order.promise == "express"))  # fmt: skip
            holds = hold_rules.holds_for(problems, payment_status, fraud)
            details: dict[str, Any] = {}
            if "address_invalid" in holds:
                details["address_invalid"] = {"problems": [p.__dict__ for p in problems]}
            if "payment_pending" in holds:
                details["payment_pending"] = {"payment_status": payment_status, "amount_due": total}
            if "fraud_review" in holds:
                details["fraud_review"] = {"score": fraud.score, "reasons": fraud.reasons}
            await conn.execute(
                text(
                    "UPDATE sales_order SET fraud_score = :s, fraud_reasons = CAST(:r AS jsonb) WHERE id = :id"
                ),
                {"s": fraud.score, "r": json.dumps(fraud.reasons), "id": order_id},
            )
            release_at = await self._mark_pre_orders(conn, order_id)
            view = await _refresh_status(conn, order_id, on_hold=bool(holds))
            await _event(conn, order_id, key, "received", holds=holds, details=details, release_at=release_at,
                         payment_status=payment_status, fraud_score=fraud.score, status=view.status)  # fmt: skip
            return Recorded(view.snapshot(), holds, details, release_at)

    async def _mark_pre_orders(self, conn: AsyncConnection, order_id: str) -> str:
        rows = list(await conn.execute(
            text("SELECT l.line, s.release_at FROM order_line l JOIN sku s ON s.code = l.sku "
                 "WHERE l.order_id = :o AND s.release_at > now()"), {"o": order_id}))  # fmt: skip
        if not rows:
            return ""
        for r in rows:
            await conn.execute(
                text("UPDATE order_line SET backordered = qty, backordered_since = now() WHERE order_id = :o AND line = :l"),
                {"o": order_id, "l": r.line},
            )  # fmt: skip
        release_at: datetime = max(r.release_at for r in rows)
        await _event(
            conn, order_id, None, "pre_order", lines=[r.line for r in rows], release_at=release_at.isoformat()
        )
        return release_at.isoformat()

    # -- holds -----------------------------------------------------------------------

    @activity.defn(name="settle_hold")
    async def settle_hold(
        self, order_id: str, kind: str, resolution: Resolution, holds_left: int
    ) -> HoldSettled:
        """Carry out a person's decision on a hold (not `cancel`: that is `cancel_order`) and
        close its exception in the same transaction."""
        key = f"{order_id}:settle:{resolution.exception_id}"
        async with business_outcomes(), self.engine.begin() as conn:
            order = await _lock_order(conn, order_id)
            done = await _done(conn, key)
            if done is not None:
                return HoldSettled(
                    await order_snapshot(conn, order_id), done["cleared"], done.get("note", "")
                )
            data = resolution.data or {}
            cleared, note = True, resolution.note
            if resolution.action == "fix_address":
                address = hold_rules.address_from(data.get("ship_to") or order.ship_to)
                problems = hold_rules.validate_address(address)
                if problems:
                    cleared, note = False, "; ".join(p.message for p in problems)
                else:
                    await conn.execute(
                        text("UPDATE sales_order SET ship_to = CAST(:a AS jsonb) WHERE id = :id"),
                        {"a": json.dumps(asdict(address)), "id": order_id},
                    )
            elif resolution.action == "confirm_payment":
                status = str(data.get("status", "authorized"))
                amount = int(data.get("amount", 0) or 0)
                await conn.execute(
                    text("UPDATE sales_order SET payment_reference = :r, payment_method = coalesce(nullif(:m, ''),"
                         " payment_method) WHERE id = :id"),
                    {"r": str(data.get("reference", ""))[:200], "m": str(data.get("method", ""))[:40], "id": order_id},
                )  # fmt: skip
                result = await _take_payment(
                    conn, self.gateway, order, key, status, amount, order.payment_method
                )
                if result == "declined":
                    cleared, note = False, "the payment was declined"
            await close_exception_row(conn, resolution)
            view = await _refresh_status(conn, order_id, on_hold=holds_left > 0 or not cleared)
            await _event(conn, order_id, key, "hold_cleared" if cleared else "hold_not_cleared", kind=kind,
                         action=resolution.action, by=resolution.resolved_by, cleared=cleared, note=note)  # fmt: skip
            return HoldSettled(view.snapshot(), cleared, note)

    # -- sourcing ----------------------------------------------------------------------

    @activity.defn(name="source_order")
    async def source_order(self, order_id: str, step: str, avoid: list[str]) -> Sourced:
        """Source every open unit not yet reserved (domain.sourcing), reserve each shipment
        through the inventory core, and backorder what no location can fill. One transaction;
        a reservation that loses a race to another order is planned again with fresh ATP.
        `avoid`: locations that came up short on a pick for this order (their count is in
        doubt): the remainder is sourced elsewhere, else it waits."""
        key = f"{order_id}:{step}"
        async with business_outcomes():  # outside the retry loop: a lost race is not a refusal
            for attempt in range(8):
                try:
                    return await self._source_once(order_id, key, set(avoid))
                except ReservationShortage:
                    log.info("sourcing lost a race; planning again", order_id=order_id, attempt=attempt)
                except DBAPIError as exc:  # a deadlock victim: the whole step is retried
                    if "deadlock" not in str(exc).lower():
                        raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise ApplicationError("sourcing kept losing races; retrying", type="sourcing_contended")

    async def _source_once(self, order_id: str, key: str, avoid: set[str]) -> Sourced:
        async with self.engine.begin() as conn:
            order = await _lock_order(conn, order_id)
            done = await _done(conn, key)
            if done is not None:
                return Sourced(await order_snapshot(conn, order_id), done["new_shipments"], done["backordered"],
                               done["unfillable"])  # fmt: skip
            lines = await _lines(conn, order_id)
            catalog = {r.code: r for r in await conn.execute(
                text("SELECT code, kind, (release_at IS NULL OR release_at <= now()) AS released FROM sku "
                     "WHERE code = ANY(:s)"), {"s": [r.sku for r in lines]})}  # fmt: skip
            released = {code for code, r in catalog.items() if r.released}
            want = {r.line: _qty(r).unassigned + r.backordered for r in lines if r.sku in released}
            want = {line: n for line, n in want.items() if n > 0}
            if order.status in ("cancelled", "completed") or not want:
                await _event(conn, order_id, key, "sourced", new_shipments=[], backordered=0, unfillable={})
                return Sourced(await order_snapshot(conn, order_id), [], 0, {})
            by_line = {r.line: r for r in lines}
            kinds = {code: r.kind for code, r in catalog.items()}
            sites, dropship, suppliers = await self._sites(conn, order.channel)
            sites = [site for site in sites if site.code not in avoid]
            skus = {by_line[line].sku for line in want}
            snap = await load_snapshot(conn, skus)
            atp: dict[tuple[str, str], int] = {}
            for site in sites:
                for sku in skus:
                    recipe = snap.recipes.get(sku)
                    if recipe is not None:
                        atp[(site.code, sku)] = kit_location_atp(
                            {c: snap.location_atp(order.channel, c, site.code) for c in recipe}, recipe
                        )
                    else:
                        atp[(site.code, sku)] = snap.location_atp(order.channel, sku, site.code)
            budget = {sku: snap.atp(order.channel, sku) for sku in skus}
            ship_to = order.ship_to or {}
            point = (float(ship_to["lat"]), float(ship_to["lon"])) if ship_to.get("lat") is not None and ship_to.get("lon") is not None else None  # fmt: skip
            rule = (await conn.execute(text("SELECT sourcing_rule FROM channel WHERE code = :c"),
                                       {"c": order.channel})).scalar_one()  # fmt: skip
            request = Request(
                lines=[SourceLine(line, by_line[line].sku, n, kinds.get(by_line[line].sku) == "kit") for line, n in sorted(want.items())],
                sites=sites, atp=atp, rule=rule, ship_to=point, allow_split=order.allow_split,
                allow_backorder=order.allow_backorder, dropship_skus={s: loc for s, loc in dropship.items() if s in skus},
            )  # fmt: skip
            plan = _plan_within_budget(request, budget)
            # Every SKU lock of the step at once, sorted, before the first write (models.stock).
            await lock_skus_with_components(conn, skus)
            new_ids: list[str] = []
            count = int((await conn.execute(text("SELECT count(*) FROM shipment WHERE order_id = :o"),
                                            {"o": order_id})).scalar_one())  # fmt: skip
            qty = {line: _qty(r) for line, r in by_line.items()}
            for shp in plan.shipments:
                count += 1
                shipment_id = f"{order_id}-S{count}"
                reservation_key = f"{order_id}:reserve:{shipment_id}"
                await stock.reserve(conn, reservation_key, order.channel,
                                    [stock.ReserveLine(line, by_line[line].sku, shp.location, n) for line, n in shp.lines],
                                    ref=order_id)  # fmt: skip
                await self._new_shipment(conn, order, shipment_id, shp.location, "stock", shp.lines, by_line,
                                         reservation_key=reservation_key)  # fmt: skip
                for line, n in shp.lines:
                    qty[line] = qty[line].reserve(n)
                new_ids.append(shipment_id)
            for shp in plan.dropship:
                count += 1
                shipment_id = f"{order_id}-S{count}"
                await self._new_shipment(conn, order, shipment_id, shp.location, "dropship", shp.lines, by_line,
                                         supplier=suppliers[shp.location])  # fmt: skip
                for line, n in shp.lines:
                    qty[line] = qty[line].reserve(n)
                new_ids.append(shipment_id)
            for line, _ in plan.backordered:
                qty[line] = qty[line].backorder(qty[line].unassigned)  # unassigned units join those waiting
            backordered = sum(q.backordered for q in qty.values())
            for line, q in qty.items():
                await _write_line(conn, order_id, line, q)
            view = await _refresh_status(conn, order_id, on_hold=False)
            unfillable = {line: n for line, n in plan.unfillable}
            await _event(conn, order_id, key, "allocated" if new_ids else ("backordered" if backordered else "sourced"),
                         new_shipments=new_ids, backordered=backordered, unfillable=unfillable, status=view.status,
                         shipments=[{"location": s.location, "lines": dict(s.lines)} for s in plan.shipments])  # fmt: skip
            return Sourced(view.snapshot(), new_ids, backordered, unfillable)

    async def _sites(
        self, conn: AsyncConnection, channel: str
    ) -> tuple[list[Site], dict[str, str], dict[str, str]]:
        """The channel's shipping locations, the SKUs drop-shipped (sku -> drop-ship location)
        and who ships from each drop-ship location (location -> supplier)."""
        rows = list(await conn.execute(
            text("SELECT l.code, l.type, l.lat, l.lon, l.ship_cost, l.priority, l.supplier FROM channel_location cl "
                 "JOIN location l ON l.code = cl.location WHERE cl.channel = :c AND l.can_ship ORDER BY l.code"),
            {"c": channel}))  # fmt: skip
        sites = [
            Site(r.code, r.lat, r.lon, r.ship_cost, r.priority, dropship=r.type == "dropship") for r in rows
        ]
        dropship: dict[str, str] = {}
        suppliers = {r.code: r.supplier for r in rows if r.type == "dropship" and r.supplier}
        for r in rows:
            if r.code in suppliers:
                for sku in (await conn.execute(
                    text("SELECT i.sku FROM supplier_item i JOIN supplier s ON s.code = i.supplier "
                         "WHERE i.supplier = :s AND s.dropship ORDER BY i.sku"), {"s": r.supplier})).scalars():  # fmt: skip
                    dropship.setdefault(sku, r.code)
        return sites, dropship, suppliers

    async def _new_shipment(
        self, conn: AsyncConnection, order: Any, shipment_id: str, location: str, kind: str,
        lines: Iterable[tuple[str, int]], by_line: dict[str, Any], *, reservation_key: str | None = None,
        supplier: str | None = None,
    ) -> None:  # fmt: skip
        await conn.execute(
            text("INSERT INTO shipment (id, order_id, location, kind, status, promise, reservation_key, supplier,"
                 " packages, created_at, updated_at) VALUES (:id, :o, :l, :k, :st, :p, :rk, :sup, '[]', now(), now())"),
            {"id": shipment_id, "o": order.id, "l": location, "k": kind, "p": order.promise, "rk": reservation_key,
             "st": "allocated" if kind == "stock" else "requested", "sup": supplier},
        )  # fmt: skip
        for line, n in lines:
            await conn.execute(
                text(
                    "INSERT INTO shipment_line (shipment_id, line, sku, qty, picked) VALUES (:s, :l, :sku, :q, 0)"
                ),
                {"s": shipment_id, "l": line, "sku": by_line[line].sku, "q": n},
            )

    @activity.defn(name="backorder_units")
    async def backorder_units(self, order_id: str, step: str, by: str) -> OrderSnapshot:
        """A person chose to let the unfilled units wait for stock (short pick decision)."""
        key = f"{order_id}:{step}"
        async with business_outcomes(), self.engine.begin() as conn:
            await _lock_order(conn, order_id)
            if await _done(conn, key) is None:
                for r in await _lines(conn, order_id):
                    q = _qty(r)
                    if q.unassigned > 0:
                        await _write_line(conn, order_id, r.line, q.backorder(q.unassigned))
                view = await _refresh_status(conn, order_id)
                await _event(conn, order_id, key, "backordered", by=by, status=view.status)
                return view.snapshot()
            return await order_snapshot(conn, order_id)

    # -- fulfilment ----------------------------------------------------------------------

    async def _shipment(
        self, conn: AsyncConnection, order_id: str, shipment_id: str
    ) -> tuple[Any, list[Any]]:
        head = (await conn.execute(text("SELECT * FROM shipment WHERE id = :id AND order_id = :o"),
                                   {"id": shipment_id, "o": order_id})).first()  # fmt: skip
        if head is None:
            raise OrderStepRefused(f"shipment {shipment_id} is not part of order {order_id}")
        lines = list(await conn.execute(
            text("SELECT * FROM shipment_line WHERE shipment_id = :s ORDER BY length(line), line"), {"s": shipment_id}))  # fmt: skip
        return head, lines

    @activity.defn(name="pick_shipment")
    async def pick_shipment(self, order_id: str, req: PickRequest) -> Picked:
        """Record what was picked. Units not found leave sellable (a count loss, or to
        `damaged`) and their reservation is released, so the workflow sources them again."""
        key = f"{order_id}:pick:{req.shipment_id}"
        async with business_outcomes(), self.engine.begin() as conn:
            await _lock_order(conn, order_id)
            done = await _done(conn, key)
            if done is not None:
                return Picked(await order_snapshot(conn, order_id), done["short"])
            head, lines = await self._shipment(conn, order_id, req.shipment_id)
            if head.status != "allocated" or head.kind != "stock":
                raise OrderStepRefused(f"shipment {head.id} is {head.status}, not waiting to be picked",
                                       shipment_status=head.status)  # fmt: skip
            picked: dict[str, int] = defaultdict(int)
            for p in req.lines:
                picked[p.sku] += p.qty
            by_sku = {ln.sku: ln for ln in lines}
            for sku, n in picked.items():
                if sku not in by_sku:
                    raise InvalidStockChange(f"{sku} is not on shipment {head.id}")
                if n < 0 or n > by_sku[sku].qty:
                    raise InvalidStockChange(f"{sku}: picked {n}, the shipment holds {by_sku[sku].qty}")
            short = {
                ln.line: ln.qty - picked.get(ln.sku, 0) for ln in lines if ln.qty - picked.get(ln.sku, 0) > 0
            }
            await lock_skus_with_components(conn, [ln.sku for ln in lines])
            if short:
                freed = await stock.release(conn, f"{key}:release", head.reservation_key, short, ref=order_id)
                damaged = req.short_reason == "damaged"
                moves = [
                    stock.Move(r["sku"], r["qty"], r["location"], "sellable", r["location"], "damaged", r["lot"])
                    if damaged else stock.adjustment_move(r["sku"], r["location"], "sellable", -r["qty"], r["lot"])
                    for r in freed.data["lines"]
                ]  # fmt: skip
                await stock.apply_moves(conn, f"{key}:short", "status_move" if damaged else "adjustment", moves,
                                        reason="damage" if damaged else "short_pick", ref=order_id)  # fmt: skip
                for r in await _lines(conn, order_id):
                    if r.line in short:
                        await _write_line(conn, order_id, r.line, _qty(r).release(short[r.line]))
            for ln in lines:
                got = picked.get(ln.sku, 0)
                await conn.execute(
                    text(
                        "UPDATE shipment_line SET qty = :q, picked = :q WHERE shipment_id = :s AND line = :l"
                    ),
                    {"q": got, "s": head.id, "l": ln.line},
                )
            status = "picked" if sum(picked.values()) > 0 else "cancelled"
            await conn.execute(text("UPDATE shipment SET status = :st, updated_at = now() WHERE id = :id"),
                               {"st": status, "id": head.id})  # fmt: skip
            view = await _refresh_status(conn, order_id)
            await _event(conn, order_id, key, "short_picked" if short else "picked", shipment=head.id,
                         picked=dict(picked), short=short, by=req.picked_by, status=view.status)  # fmt: skip
            return Picked(view.snapshot(), short)

    @activity.defn(name="pack_shipment")
    async def pack_shipment(self, order_id: str, req: PackRequest) -> OrderSnapshot:
        key = f"{order_id}:pack:{req.shipment_id}"
        async with business_outcomes(), self.engine.begin() as conn:
            await _lock_order(conn, order_id)
            if await _done(conn, key) is None:
                head, lines = await self._shipment(conn, order_id, req.shipment_id)
                if head.status != "picked":
                    raise OrderStepRefused(f"shipment {head.id} is {head.status}, not picked",
                                           shipment_status=head.status)  # fmt: skip
                limits = waves.CARRIER_LIMITS.get(req.service)
                if limits is None:
                    raise InvalidStockChange(f"unknown carrier service {req.service!r}")
                packages = [
                    waves.Package(p.weight_g, p.length_mm, p.width_mm, p.height_mm, p.lines)
                    for p in req.packages
                ]
                problems = waves.validate_pack(
                    {ln.sku: ln.picked for ln in lines if ln.picked}, packages, limits
                )
                if problems:
                    raise InvalidStockChange("; ".join(problems))
                await conn.execute(
                    text("UPDATE shipment SET status = 'packed', service = :sv, packages = CAST(:p AS jsonb),"
                         " updated_at = now() WHERE id = :id"),
                    {"sv": req.service, "p": json.dumps([p.__dict__ for p in req.packages]), "id": head.id},
                )  # fmt: skip
                await _event(conn, order_id, key, "packed", shipment=head.id, packages=len(req.packages))
            return await order_snapshot(conn, order_id)

    @activity.defn(name="ship_shipment")
    async def ship_shipment(self, order_id: str, req: ShipRequest) -> OrderSnapshot:
        """The parcel leaves: the reservation is consumed (sellable → customer, COGS at moving
        average), or for drop-ship the supplier's cost is posted; the payment for these units
        is captured and revenue, shipping and tax are posted. One transaction."""
        key = f"{order_id}:ship:{req.shipment_id}"
        async with business_outcomes(), self.engine.begin() as conn:
            order = await _lock_order(conn, order_id)
            if await _done(conn, key) is not None:
                return await order_snapshot(conn, order_id)
            head, lines = await self._shipment(conn, order_id, req.shipment_id)
            ready = "packed" if head.kind == "stock" else "requested"
            if head.status != ready:
                raise OrderStepRefused(
                    f"shipment {head.id} is {head.status}, not {ready}", shipment_status=head.status
                )
            units = {ln.line: ln.qty for ln in lines if ln.qty > 0}
            await lock_skus_with_components(conn, [ln.sku for ln in lines])
            if head.kind == "stock":
                await stock.consume(conn, f"{key}:consume", head.reservation_key, None, ref=order_id)
            else:
                postings: list[Posting] = []
                for ln in lines:
                    cost = (await conn.execute(
                        text("SELECT cost FROM supplier_item WHERE supplier = :s AND sku = :k"),
                        {"s": head.supplier, "k": ln.sku})).scalar() or 0  # fmt: skip
                    postings += [Posting.of(p, location=head.location, sku=ln.sku, channel=order.channel)
                                 for p in lines_for("dropship_shipment", {"cost": int(cost) * ln.qty})]  # fmt: skip
                if postings:
                    await post(conn, f"{key}:dropship", "dropship_shipment", postings, ref=order_id)
            order_lines = await _lines(conn, order_id)
            for r in order_lines:
                if r.line in units:
                    await _write_line(conn, order_id, r.line, _qty(r).ship(units[r.line]))
            if order.payment_reported != "captured" and order.payment_id:
                first = not bool((await conn.execute(
                    text("SELECT 1 FROM shipment WHERE order_id = :o AND status = 'shipped' LIMIT 1"), {"o": order_id})).first())  # fmt: skip
                charge = rules.shipment_charge(_priced(order_lines), units, order.shipping_amount, order.tax_amount,
                                               {r.line: r.shipped for r in order_lines}, first_shipment=first)  # fmt: skip
                if charge.total > 0:
                    await capture_payment(
                        conn, self.gateway, f"{key}:capture", order.payment_id, charge.total, charge.tax,
                        revenue=charge.merchandise, shipping=charge.shipping, channel=order.channel,
                    )  # fmt: skip
                    await conn.execute(
                        text("UPDATE sales_order SET captured = captured + :c, payment_status = 'captured' WHERE id = :id"),
                        {"c": charge.total, "id": order_id},
                    )  # fmt: skip
            await conn.execute(
                text("UPDATE shipment SET status = 'shipped', carrier = :c, service = coalesce(service, :sv),"
                     " tracking = :t, shipped_at = now(), updated_at = now() WHERE id = :id"),
                {"c": req.carrier, "sv": req.service, "t": req.tracking, "id": head.id},
            )  # fmt: skip
            view = await _refresh_status(conn, order_id)
            await _event(conn, order_id, key, "shipped", shipment=head.id, carrier=req.carrier, tracking=req.tracking,
                         units=units, status=view.status)  # fmt: skip
            await _close_if_done(conn, view)
            return view.snapshot()

    # -- cancel and complete ---------------------------------------------------------

    @activity.defn(name="cancel_order")
    async def cancel_order(
        self, order_id: str, req: CancelRequest, step: str, exception_id: str
    ) -> OrderSnapshot:
        """Cancel units that have not shipped (all of them, or `req.lines`): release their
        reservations, shrink or cancel their shipments, and settle the money — refund what
        was captured for them, or void an untouched authorization when nothing is left."""
        key = f"{order_id}:{step}"
        async with business_outcomes(), self.engine.begin() as conn:
            order = await _lock_order(conn, order_id)
            if await _done(conn, key) is not None:
                return await order_snapshot(conn, order_id)
            lines = await _lines(conn, order_id)
            by_line = {r.line: r for r in lines}
            if req.lines is None:
                cancel = {r.line: _qty(r).open for r in lines if _qty(r).open > 0}
            else:
                cancel = {line: n for line, n in req.lines.items() if n > 0}
                for line, n in cancel.items():
                    if line not in by_line:
                        raise InvalidStockChange(f"order {order_id} has no line {line}")
                    if n > _qty(by_line[line]).open:
                        raise OrderStepRefused(
                            f"line {line} ({by_line[line].sku}) has {_qty(by_line[line]).open} units left to cancel;"
                            f" the rest has shipped or is cancelled", line=line, open=_qty(by_line[line]).open)  # fmt: skip
            if not cancel:
                raise OrderStepRefused(f"order {order_id} has nothing left to cancel: it has shipped or is cancelled",
                                       status=order.status)  # fmt: skip
            await lock_skus_with_components(conn, [r.sku for r in lines])
            new = {line: _qty(by_line[line]).cancel(n) for line, n in cancel.items()}
            to_release = {line: by_line[line].reserved - q.reserved for line, q in new.items()}
            rank = {"requested": 0, "allocated": 0, "picked": 1, "packed": 2}
            shipments = [(h, ls) for h, ls in await _shipments(conn, order_id) if h.status in rank]
            shipments.sort(key=lambda s: (rank[s[0].status], s[0].id))
            for head, ship_lines in shipments:
                take = {}
                for ln in ship_lines:
                    n = min(to_release.get(ln.line, 0), ln.qty)
                    if n > 0:
                        take[ln.line] = n
                        to_release[ln.line] -= n
                        await conn.execute(
                            text("UPDATE shipment_line SET qty = qty - :n, picked = least(picked, qty - :n)"
                                 " WHERE shipment_id = :s AND line = :l"), {"n": n, "s": head.id, "l": ln.line})  # fmt: skip
                if not take:
                    continue
                if head.kind == "stock":
                    await stock.release(
                        conn, f"{key}:release:{head.id}", head.reservation_key, take, ref=order_id
                    )
                left = (await conn.execute(text("SELECT coalesce(sum(qty), 0) FROM shipment_line WHERE shipment_id = :s"),
                                           {"s": head.id})).scalar_one()  # fmt: skip
                if int(left) == 0:
                    await conn.execute(text("UPDATE shipment SET status = 'cancelled', updated_at = now() WHERE id = :id"),
                                       {"id": head.id})  # fmt: skip
            for line, q in new.items():
                await _write_line(conn, order_id, line, q)
            money = rules.cancel_refund_amounts(_priced(lines), cancel, order.shipping_amount, order.tax_amount,
                                                {r.line: r.cancelled for r in lines})  # fmt: skip
            everything = all(_qty(by_line[ln]).open == cancel.get(ln, 0) for ln in by_line) and not any(
                r.shipped for r in lines
            )
            settled = "none"
            if order.payment_id and order.payment_reported == "captured" and money.total > 0:
                await refund_payment(conn, self.gateway, f"{key}:refund", order.payment_id, money.total,
                                     channel=order.channel)  # fmt: skip
                settled = "refunded"
                await conn.execute(
                    text("UPDATE sales_order SET payment_status = CASE WHEN :all THEN 'refunded' ELSE 'partially_refunded'"
                         " END WHERE id = :id"), {"all": everything, "id": order_id})  # fmt: skip
            elif (
                order.payment_id
                and order.payment_status == "authorized"
                and order.captured == 0
                and everything
            ):
                await void_payment(conn, self.gateway, f"{key}:void", order.payment_id)
                settled = "voided"
                await conn.execute(
                    text("UPDATE sales_order SET payment_status = 'voided' WHERE id = :id"), {"id": order_id}
                )
            if exception_id:
                await close_exception_row(
                    conn, Resolution(exception_id, "cancel", req.reason, req.requested_by)
                )
            view = await _refresh_status(conn, order_id)
            await _event(conn, order_id, key, "cancelled", lines=cancel, reason=req.reason, by=req.requested_by,
                         refund=money.total if settled == "refunded" else 0, payment=settled, status=view.status)  # fmt: skip
            await _close_if_done(conn, view)
            return view.snapshot()

    @activity.defn(name="complete_order")
    async def complete_order(self, order_id: str) -> OrderSnapshot:
        """Every unit shipped or cancelled: the order is done (completed, or cancelled when
        nothing shipped). Any exception still open for it is withdrawn."""
        async with business_outcomes(), self.engine.begin() as conn:
            await _lock_order(conn, order_id)
            view = await _view(conn, order_id)
            if await _done(conn, f"{order_id}:complete") is None and await _close_if_done(conn, view) is None:
                raise OrderStepRefused(f"order {order_id} still has units to ship")
            return view.snapshot()


async def _close_if_done(conn: AsyncConnection, view: _View) -> str | None:
    """Every unit shipped or cancelled (`view`: the order as this transaction left it): the
    order is done in this same transaction — `completed` when something shipped (payment
    captured and posted by then), else `cancelled`; exceptions still open for it are
    withdrawn. The key is the one `complete_order` uses, so either closes it once. Sets the
    view's status."""
    lines = view.quantities()
    if any(q.open for q in lines):
        return None
    status = "completed" if any(q.shipped for q in lines) else "cancelled"
    order_id = view.order_id
    await conn.execute(
        text("UPDATE sales_order SET status = :s, completed_at = coalesce(completed_at, now()), updated_at = now()"
             " WHERE id = :id"), {"s": status, "id": order_id},
    )  # fmt: skip
    await _withdraw_exceptions(conn, order_id, f"order {status}")
    await _event(conn, order_id, f"{order_id}:complete", status, once=True)
    view.status = status
    return status


async def _withdraw_exceptions(conn: AsyncConnection, order_id: str, why: str) -> None:
    await conn.execute(
        text("UPDATE exception SET status = 'cancelled', resolved_at = now(), resolved_by = 'system',"
             " resolution = CAST(:r AS jsonb) WHERE subject_type = 'order' AND subject_id = :o AND status = 'open'"),
        {"o": order_id, "r": json.dumps({"action": "withdrawn", "note": why})},
    )  # fmt: skip


def _plan_within_budget(request: Request, budget: dict[str, int]) -> Any:
    """Sourcing sees ATP per location; safety stock is per channel. Where a plan would take
    more of a SKU than the channel may promise, lower that SKU's ATP at the plan's last
    location and plan again (a few rounds always settle: each round lowers a total)."""
    atp = dict(request.atp)
    by_line = {ln.line: ln for ln in request.lines}
    for _ in range(8):
        plan = source(Request(request.lines, request.sites, atp, request.rule, request.ship_to,
                              request.allow_split, request.allow_backorder, request.dropship_skus))  # fmt: skip
        taken: dict[str, int] = defaultdict(int)
        last: dict[str, str] = {}
        for shp in plan.shipments:
            for line, n in shp.lines:
                taken[by_line[line].sku] += n
                last[by_line[line].sku] = shp.location
        over = {sku: n - budget.get(sku, 0) for sku, n in taken.items() if n > budget.get(sku, 0)}
        if not over:
            return plan
        for sku, excess in over.items():
            place = (last[sku], sku)
            atp[place] = max(0, atp.get(place, 0) - excess)
    return source(Request(request.lines, request.sites, {k: 0 for k in atp}, request.rule, request.ship_to,
                          request.allow_split, request.allow_backorder, request.dropship_skus))  # fmt: skip
