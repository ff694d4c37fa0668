"""Orders: each one an `order-{channel}-{external_id}` workflow.

The API records what the channel sent (status `received`, payment `pending`) in one
transaction and starts the workflow; from then on only the workflow's activities change the
order. Address, payment and fraud problems are holds the workflow opens, never a 422 here:
the API only checks types, shapes and references (channel, SKUs, the payment total)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.auth import ANY, CurrentPrincipal, Principal, Role, guard
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.pagination import PageDep, encode_cursor
from api.problems import Problem, not_found
from api.schemas import Page, RequestModel, ResponseModel
from api.temporal import start, update
from models.orders import ORDER_STATUSES
from runtime.settings import Settings
from workflows import search_attributes as sa
from workflows.contracts import (
    CancelRequest,
    OrderInput,
    OrderSnapshot,
    PaymentConfirmation,
    ShipToFix,
    order_workflow_id,
)

router = APIRouter(tags=["orders"])
CODE = r"^[A-Za-z0-9._-]{1,64}$"
MAX_MONEY = 2_147_483_647  # the read model keeps money in 32-bit integers (minor units)
MAX_QTY = 1_000_000


def invalid(loc: Sequence[str | int], msg: str) -> Problem:
    return Problem(422, msg, slug="validation-error", errors=[{"loc": list(loc), "msg": msg}])


def by(principal: Principal) -> str:
    return f"{principal.name} ({principal.key_id})"


# -- request bodies ------------------------------------------------------------------


class AddressIn(RequestModel):
    """Any text is accepted (an address that cannot be shipped to becomes an `address_invalid`
    hold naming the field, not a 422); only the types are checked."""

    name: str = Field(default="", max_length=200)
    line1: str = Field(default="", max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    region: str = Field(default="", max_length=100)
    postal_code: str = Field(default="", max_length=32)
    country: str = Field(default="", max_length=64)
    lat: float | None = Field(default=None, allow_inf_nan=False)
    lon: float | None = Field(default=None, allow_inf_nan=False)


class CustomerIn(RequestModel):
    id: str = Field(min_length=1, max_length=200)
    email: str = Field(default="", max_length=320)


class OrderLineIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)
    unit_price: int = Field(ge=0, le=MAX_MONEY)


class PaymentIn(RequestModel):
    method: str = Field(default="", max_length=40)
    status: Literal["authorized", "captured", "pending"]
    amount: int = Field(ge=0, le=MAX_MONEY)
    reference: str = Field(default="", max_length=200)


class OrderCreate(RequestModel):
    channel: str = Field(pattern=CODE)
    external_id: str = Field(pattern=CODE, description="Your order number; one order per channel and number.")
    customer: CustomerIn
    ship_to: AddressIn
    billing_address: AddressIn | None = None
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)
    shipping_amount: int = Field(default=0, ge=0, le=MAX_MONEY)
    tax_amount: int = Field(default=0, ge=0, le=MAX_MONEY)
    payment: PaymentIn
    promise: Literal["standard", "express"] = "standard"
    allow_backorder: bool = True
    allow_split: bool = True
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


# -- responses -----------------------------------------------------------------------


class CustomerRead(ResponseModel):
    id: str
    email: str


class AmountsRead(ResponseModel):
    merchandise: int
    shipping: int
    tax: int
    total: int


class PaymentRead(ResponseModel):
    method: str
    status: str  # what our books say: pending, authorized, captured, voided, refunded, …
    reported: str | None = None  # what the channel said when it sent the order
    amount: int
    reference: str
    captured: int


class OrderLineRead(ResponseModel):
    line: str
    sku: str
    qty: int
    unit_price: int
    reserved: int
    backordered: int
    shipped: int
    cancelled: int
    returned: int


class ShipmentLineBrief(ResponseModel):
    line: str
    sku: str
    qty: int
    picked: int


class OrderShipmentRead(ResponseModel):
    id: str
    location: str
    kind: str
    status: str
    promise: str
    lines: list[ShipmentLineBrief]
    supplier: str | None
    carrier: str | None
    service: str | None
    tracking: str | None
    packages: list[dict[str, Any]]
    created_at: datetime
    shipped_at: datetime | None


class HoldRead(ResponseModel):
    exception_id: str
    kind: str
    status: str
    opened_at: datetime
    due_at: datetime
    escalation_level: int
    actions: list[str]


class TimelineEvent(ResponseModel):
    at: datetime
    event: str
    detail: dict[str, Any]


class OrderRead(ResponseModel):
    id: str
    channel: str
    external_id: str
    status: str
    customer: CustomerRead
    ship_to: dict[str, Any]
    billing_address: dict[str, Any] | None
    promise: str
    allow_backorder: bool
    allow_split: bool
    currency: str
    amounts: AmountsRead
    payment: PaymentRead
    lines: list[OrderLineRead]
    shipments: list[OrderShipmentRead]
    holds: list[HoldRead]
    timeline: list[TimelineEvent]
    fraud_score: int | None
    fraud_reasons: list[str]
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


# -- reading -------------------------------------------------------------------------


async def load_orders(conn: AsyncConnection, heads: Sequence[Any]) -> list[OrderRead]:
    """The full read of these `sales_order` rows, in their order: one query per child table,
    whatever the number of orders."""
    ids = [h.id for h in heads]
    if not ids:
        return []
    lines: dict[str, list[OrderLineRead]] = defaultdict(list)
    for r in await conn.execute(
        text("SELECT * FROM order_line WHERE order_id = ANY(:ids) ORDER BY order_id, length(line), line"),
        {"ids": ids},
    ):
        lines[r.order_id].append(OrderLineRead.model_validate(r._mapping))
    shipment_lines: dict[str, list[ShipmentLineBrief]] = defaultdict(list)
    for r in await conn.execute(
        text("SELECT sl.* FROM shipment_line sl JOIN shipment s ON s.id = sl.shipment_id "
             "WHERE s.order_id = ANY(:ids) ORDER BY sl.shipment_id, length(sl.line), sl.line"), {"ids": ids},
    ):  # fmt: skip
        shipment_lines[r.shipment_id].append(ShipmentLineBrief.model_validate(r._mapping))
    shipments: dict[str, list[OrderShipmentRead]] = defaultdict(list)
    for r in await conn.execute(
        text("SELECT * FROM shipment WHERE order_id = ANY(:ids) ORDER BY created_at, id"), {"ids": ids}
    ):
        shipments[r.order_id].append(
            OrderShipmentRead.model_validate({**r._mapping, "lines": shipment_lines.get(r.id, [])})
        )
    holds: dict[str, list[HoldRead]] = defaultdict(list)
    for r in await conn.execute(
        text("SELECT id AS exception_id, subject_id, kind, status, opened_at, due_at, escalation_level, actions "
             "FROM exception WHERE subject_type = 'order' AND subject_id = ANY(:ids) ORDER BY opened_at, id"),
        {"ids": ids},
    ):  # fmt: skip
        holds[r.subject_id].append(HoldRead.model_validate(r._mapping))
    timeline: dict[str, list[TimelineEvent]] = defaultdict(list)
    for r in await conn.execute(
        text("SELECT order_id, at, event, detail FROM order_event WHERE order_id = ANY(:ids) ORDER BY id"),
        {"ids": ids},
    ):
        timeline[r.order_id].append(TimelineEvent.model_validate(r._mapping))
    out = []
    for h in heads:
        m = h._mapping
        out.append(
            OrderRead(
                id=h.id, channel=h.channel, external_id=h.external_id, status=h.status,
                customer=CustomerRead(id=h.customer_id, email=h.customer_email),
                ship_to=h.ship_to, billing_address=h.billing_address, promise=h.promise,
                allow_backorder=h.allow_backorder, allow_split=h.allow_split, currency=h.currency,
                amounts=AmountsRead(merchandise=h.merchandise, shipping=h.shipping_amount, tax=h.tax_amount,
                                    total=h.merchandise + h.shipping_amount + h.tax_amount),
                payment=PaymentRead(method=h.payment_method, status=h.payment_status,
                                    reported=m.get("payment_reported"), amount=h.payment_amount,
                                    reference=h.payment_reference, captured=h.captured),
                lines=lines.get(h.id, []), shipments=shipments.get(h.id, []), holds=holds.get(h.id, []),
                timeline=timeline.get(h.id, []), fraud_score=h.fraud_score, fraud_reasons=h.fraud_reasons or [],
                workflow_id=h.workflow_id, created_at=h.created_at, updated_at=h.updated_at,
                completed_at=h.completed_at,
            )
        )  # fmt: skip
    return out


async def read_order(engine: AsyncEngine, order_id: str, principal: Principal | None = None) -> OrderRead:
    """One order; 404 if it does not exist or belongs to another channel than the caller's."""
    async with engine.connect() as conn:
        head = (
            await conn.execute(text("SELECT * FROM sales_order WHERE id = :id"), {"id": order_id})
        ).first()
        if head is None or (principal is not None and not principal.can_see_channel(head.channel)):
            raise not_found(f"order {order_id}")
        return (await load_orders(conn, [head]))[0]


# -- create --------------------------------------------------------------------------


def request_hash(body: OrderCreate) -> str:
    """What the channel asked for, defaults filled in: a retry hashes the same, other data does not."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def sa_pairs(channel: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([
        SearchAttributePair(sa.OMNI_STATUS, "received"), SearchAttributePair(sa.OMNI_CHANNEL, channel),
        SearchAttributePair(sa.OMNI_EXCEPTION, ""), SearchAttributePair(sa.OMNI_PRIORITY, 0.0),
    ])  # fmt: skip


async def _check_references(conn: AsyncConnection, body: OrderCreate) -> None:
    known_channel = (
        await conn.execute(text("SELECT 1 FROM channel WHERE code = :c"), {"c": body.channel})
    ).first()
    if known_channel is None:
        raise invalid(["body", "channel"], f"unknown channel {body.channel!r}")
    seen: set[str] = set()
    for i, ln in enumerate(body.lines):
        if ln.sku in seen:
            raise invalid(
                ["body", "lines", i, "sku"], f"SKU {ln.sku!r} is on the order twice (one line per SKU)"
            )
        seen.add(ln.sku)
    known = set(
        (await conn.execute(text("SELECT code FROM sku WHERE code = ANY(:c)"), {"c": list(seen)})).scalars()
    )
    for i, ln in enumerate(body.lines):
        if ln.sku not in known:
            raise invalid(["body", "lines", i, "sku"], f"unknown SKU {ln.sku!r}")


@router.post(
    "/v1/orders",
    status_code=202,
    response_model=OrderRead,
    responses={200: {"model": OrderRead, "description": "The order already exists with the same data."}},
    **guard(Role.channel, idempotency="required"),
)
async def create_order(
    body: OrderCreate,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    """Take an order and start its workflow (202, status `received`). The same `channel` +
    `external_id` again returns the existing order (200) if the data is the same, 409 if not;
    never a second order. A channel key orders for its own channel only."""
    if principal.role is Role.channel and body.channel != principal.channel:
        raise Problem(
            403, f"this key may only create orders for channel {principal.channel!r}", slug="forbidden"
        )
    merchandise = sum(ln.qty * ln.unit_price for ln in body.lines)
    total = merchandise + body.shipping_amount + body.tax_amount
    if total > MAX_MONEY:
        raise invalid(["body", "lines"], f"the order total {total} is larger than {MAX_MONEY}")
    if body.payment.status in ("authorized", "captured") and body.payment.amount != total:
        raise invalid(["body", "payment", "amount"],
                      f"an {body.payment.status} payment must cover the order total {total} "
                      f"(merchandise {merchandise} + shipping {body.shipping_amount} + tax {body.tax_amount})")  # fmt: skip
    order_id = order_workflow_id(body.channel, body.external_id)
    digest = request_hash(body)
    async with engine.begin() as conn:
        await _check_references(conn, body)
        inserted = (await conn.execute(
            text("INSERT INTO sales_order (id, channel, external_id, status, customer_id, customer_email, ship_to, "
                 "billing_address, promise, allow_backorder, allow_split, currency, merchandise, shipping_amount, "
                 "tax_amount, payment_method, payment_reported, payment_status, payment_amount, payment_reference, "
                 "captured, fraud_reasons, request_hash, workflow_id, created_at, updated_at) VALUES "
                 "(:id, :ch, :ext, 'received', :cid, :email, CAST(:ship AS jsonb), CAST(:bill AS jsonb), :promise, "
                 ":backorder, :split, :cur, :merch, :ship_amt, :tax, :pm, :pr, 'pending', :pa, :pref, 0, "
                 "'[]'::jsonb, :hash, :id, now(), now()) ON CONFLICT DO NOTHING RETURNING id"),
            {"id": order_id, "ch": body.channel, "ext": body.external_id, "cid": body.customer.id,
             "email": body.customer.email, "ship": json.dumps(body.ship_to.model_dump()),
             "bill": json.dumps(body.billing_address.model_dump()) if body.billing_address else None,
             "promise": body.promise, "backorder": body.allow_backorder, "split": body.allow_split,
             "cur": body.currency, "merch": merchandise, "ship_amt": body.shipping_amount, "tax": body.tax_amount,
             "pm": body.payment.method, "pr": body.payment.status, "pa": body.payment.amount,
             "pref": body.payment.reference, "hash": digest})).first()  # fmt: skip
        if inserted is not None:
            await conn.execute(
                text("INSERT INTO order_line (order_id, line, sku, qty, unit_price, reserved, backordered, shipped, "
                     "cancelled, returned) VALUES (:o, :line, :sku, :qty, :price, 0, 0, 0, 0, 0)"),
                [{"o": order_id, "line": str(n), "sku": ln.sku, "qty": ln.qty, "price": ln.unit_price}
                 for n, ln in enumerate(body.lines, start=1)],
            )  # fmt: skip
        else:
            existing = (await conn.execute(
                text("SELECT channel, external_id, request_hash FROM sales_order WHERE id = :id"), {"id": order_id},
            )).first()  # fmt: skip
            if existing is None or (existing.channel, existing.external_id) != (
                body.channel,
                body.external_id,
            ):
                raise Problem(409, f"order id {order_id} is taken", slug="conflict")
            if existing.request_hash != digest:
                raise Problem(
                    409, f"order {order_id} exists with other data", slug="conflict", order_id=order_id
                )
    # Started on every create, new or not: an order whose first start did not reach the engine
    # (503) gets its workflow when the channel retries; a running or finished one is left alone.
    await start(
        temporal, "Order",
        OrderInput(order_id=order_id, channel=body.channel, value=total, policies=settings.order_policies(),
                   backorder_aging_seconds=settings.backorder_aging_seconds,
                   backorder_recheck_seconds=settings.backorder_recheck_seconds),
        id=order_id, task_queue=settings.task_queue, search_attributes=sa_pairs(body.channel),
    )  # fmt: skip
    order = await read_order(engine, order_id)
    return JSONResponse(
        order.model_dump(mode="json"),
        status_code=202 if inserted is not None else 200,
        headers={"Location": f"/v1/orders/{order_id}"},
    )


# -- read ----------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get("/v1/orders", response_model=Page[OrderRead], **guard(ANY))
async def list_orders(
    engine: EngineDep,
    page: PageDep,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(max_length=20, description="One order status.")] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    created_from: Annotated[datetime | None, Query(description="Created at or after (naive = UTC).")] = None,
    created_to: Annotated[datetime | None, Query(description="Created before (naive = UTC).")] = None,
) -> Page[OrderRead]:
    """Orders, oldest first. A channel key sees its own channel's orders only."""
    if status is not None and status not in ORDER_STATUSES:
        raise Problem(422, f"status must be one of {list(ORDER_STATUSES)}", slug="validation-error",
                      errors=[{"loc": ["query", "status"], "msg": f"must be one of {list(ORDER_STATUSES)}"}])  # fmt: skip
    if principal.role is Role.channel:
        if channel is not None and channel != principal.channel:
            raise not_found(f"channel {channel}")  # never reveal another channel
        channel = principal.channel
    params: dict[str, Any] = {"st": status, "ch": channel, "cid": customer_id, "from": _utc(created_from),
                              "to": _utc(created_to), "lim": page.limit + 1}  # fmt: skip
    where = ("(CAST(:st AS text) IS NULL OR status = :st) AND (CAST(:ch AS text) IS NULL OR channel = :ch) "
             "AND (CAST(:cid AS text) IS NULL OR customer_id = :cid) "
             "AND (CAST(:from AS timestamptz) IS NULL OR created_at >= :from) "
             "AND (CAST(:to AS timestamptz) IS NULL OR created_at < :to)")  # fmt: skip
    if page.after:
        if len(page.after) != 2:
            raise Problem(
                400, "the cursor is not valid (use next_cursor from the previous page)", slug="bad-cursor"
            )
        try:
            params.update(c0=datetime.fromisoformat(str(page.after[0])), c1=str(page.after[1]))
        except ValueError:
            raise Problem(400, "the cursor is not valid (use next_cursor from the previous page)",
                          slug="bad-cursor") from None  # fmt: skip
        where += " AND (created_at, id) > (CAST(:c0 AS timestamptz), CAST(:c1 AS text))"
    async with engine.connect() as conn:
        heads = (await conn.execute(
            text(f"SELECT * FROM sales_order WHERE {where} ORDER BY created_at, id LIMIT :lim"), params)).all()  # noqa: S608  # fmt: skip
        items = await load_orders(conn, heads[: page.limit])
    cursor = None
    if len(heads) > page.limit:
        last = heads[page.limit - 1]
        cursor = encode_cursor([last.created_at.isoformat(), last.id])
    return Page(items=items, next_cursor=cursor)


@router.get("/v1/orders/{order_id}", response_model=OrderRead, **guard(ANY))
async def get_order(order_id: str, engine: EngineDep, principal: CurrentPrincipal) -> OrderRead:
    """One order with its lines, shipments, holds and timeline (channel keys: own channel)."""
    return await read_order(engine, order_id, principal)


# -- actions -------------------------------------------------------------------------


class CancelLineIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=MAX_QTY)


class CancelBody(RequestModel):
    reason: str = Field(min_length=1, max_length=200)
    lines: list[CancelLineIn] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Cancel only these units; absent: all not shipped.",
    )


async def _update(temporal: Client, settings: Settings, order: OrderRead, name: str, arg: Any) -> None:
    await update(temporal, order.workflow_id, name, arg, workflow="Order",
                 rpc_seconds=settings.rpc_timeout_seconds, result_type=OrderSnapshot)  # fmt: skip


@router.post(
    "/v1/orders/{order_id}/cancel",
    response_model=OrderRead,
    **guard(Role.channel, idempotency="optional"),
)
async def cancel_order(
    order_id: str,
    body: CancelBody,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> OrderRead:
    """Cancel the order, or some units of some lines. What has shipped cannot be cancelled (409)."""
    order = await read_order(engine, order_id, principal)
    lines: dict[str, int] | None = None
    if body.lines is not None:
        line_of = {ln.sku: ln.line for ln in order.lines}
        lines = {}
        for i, ln in enumerate(body.lines):
            if ln.sku not in line_of:
                raise invalid(["body", "lines", i, "sku"], f"SKU {ln.sku!r} is not on order {order_id}")
            if line_of[ln.sku] in lines:
                raise invalid(["body", "lines", i, "sku"], f"SKU {ln.sku!r} is listed twice")
            lines[line_of[ln.sku]] = ln.qty
    await _update(temporal, settings, order, "cancel", CancelRequest(body.reason, lines, by(principal)))
    return await read_order(engine, order_id)


@router.patch("/v1/orders/{order_id}/ship-to", response_model=OrderRead, **guard(Role.channel))
async def fix_ship_to(
    order_id: str,
    body: AddressIn,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> OrderRead:
    """Correct the ship-to address (the order's workflow decides whether it may still change,
    and clears an `address_invalid` hold once the address is good)."""
    order = await read_order(engine, order_id, principal)
    await _update(temporal, settings, order, "fix_ship_to", ShipToFix(body.model_dump(), by(principal)))
    return await read_order(engine, order_id)


class PaymentBody(RequestModel):
    status: Literal["authorized", "captured"]
    amount: int = Field(gt=0, le=MAX_MONEY)
    reference: str = Field(min_length=1, max_length=200)
    method: str = Field(default="", max_length=40)


@router.post(
    "/v1/orders/{order_id}/payment",
    response_model=OrderRead,
    **guard(Role.channel, Role.finance, idempotency="optional"),
)
async def confirm_payment(
    order_id: str,
    body: PaymentBody,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> OrderRead:
    """Report the payment of an order that was taken with payment `pending`."""
    order = await read_order(engine, order_id, principal)
    confirmation = PaymentConfirmation(body.status, body.amount, body.reference, body.method, by(principal))
    await _update(temporal, settings, order, "confirm_payment", confirmation)
    return await read_order(engine, order_id)
