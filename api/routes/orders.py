"""Orders: each one an `order-{channel}-{external_id}` workflow.

The API records what the channel sent (status `received`, payment `pending`) in one
transaction and starts the workflow; from then on only the workflow's activities change the
order. Address, payment and fraud problems are holds the workflow opens, never a 422 here:
the API only checks types, shapes and references (channel, SKUs, the payment total).
Shapes: api/schemas_orders.py; the read model: api/read_models/orders.py; the intake rows:
models/order_intake.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth import ANY, CurrentPrincipal, Principal, Role, channel_scope, guard
from api.deps import EngineDep, SettingsDep, TemporalDep, built_in_loop
from api.domain_errors import as_problem
from api.idempotency_keys import begin_with_key, key_taken_with_the_write, store_with_write
from api.intake_refusal import turn_away_if_short
from api.order_start import start_order
from api.pagination import PageDep, PageParams, encode_cursor
from api.problems import Problem
from api.process_steps import ProcessSteps
from api.read_models.orders import OrderFilter, page_of_orders, read_order, read_order_on
from api.schemas import Page
from api.schemas_orders import (
    CODE,
    MAX_MONEY,
    MAX_QTY,
    AddressIn,
    CancelBody,
    OrderCreate,
    OrderRead,
    PaymentBody,
)
from api.temporal import update
from domain import orders as order_rules
from domain.errors import DomainError, WrongState
from models.order_intake import IntakeLine, OrderIntake, insert_order, recorded_as
from models.orders import ORDER_STATUSES
from workflows.contracts import (
    CancelRequest,
    OrderSnapshot,
    PaymentConfirmation,
    ShipToFix,
    order_workflow_id,
)

__all__ = ["CODE", "MAX_QTY", "by", "router"]  # shipments uses CODE, MAX_QTY and by

router = APIRouter(tags=["orders"])
log = structlog.stdlib.get_logger("omniflow.api")


def invalid(loc: Sequence[str | int], msg: str) -> Problem:
    return Problem(422, msg, slug="validation-error", errors=[{"loc": list(loc), "msg": msg}])


def by(principal: Principal) -> str:
    return f"{principal.name} ({principal.key_id})"


# -- create --------------------------------------------------------------------------


# Whether the channel exists, and which of the given SKUs do, in one statement.
_KNOWN = text(
    "SELECT EXISTS (SELECT 1 FROM channel WHERE code = :c) AS channel, ARRAY(SELECT code FROM sku WHERE code = ANY(:s)) AS skus"
)


async def _check_references(conn: AsyncConnection, body: OrderCreate) -> None:
    known = (await conn.execute(_KNOWN, {"c": body.channel, "s": [ln.sku for ln in body.lines]})).one()
    if not known.channel:
        raise invalid(["body", "channel"], f"unknown channel {body.channel!r}")
    seen: set[str] = set()
    for i, ln in enumerate(body.lines):
        if ln.sku in seen:
            raise invalid(
                ["body", "lines", i, "sku"], f"SKU {ln.sku!r} is on the order twice (one line per SKU)"
            )
        seen.add(ln.sku)
    for i, ln in enumerate(body.lines):
        if ln.sku not in known.skus:
            raise invalid(["body", "lines", i, "sku"], f"unknown SKU {ln.sku!r}")


def _checked_total(body: OrderCreate) -> int:
    """The order total; 422 if it overflows or an authorized/captured payment does not cover it."""
    merchandise = sum(ln.qty * ln.unit_price for ln in body.lines)
    total = merchandise + body.shipping_amount + body.tax_amount
    if total > MAX_MONEY:
        raise invalid(["body", "lines"], f"the order total {total} is larger than {MAX_MONEY}")
    if body.payment.status in ("authorized", "captured") and body.payment.amount != total:
        raise invalid(
            ["body", "payment", "amount"],
            f"an {body.payment.status} payment must cover the order total {total} "
            f"(merchandise {merchandise} + shipping {body.shipping_amount} + tax {body.tax_amount})",
        )
    return total


def _intake(body: OrderCreate, order_id: str) -> OrderIntake:
    return OrderIntake(
        order_id=order_id,
        channel=body.channel,
        external_id=body.external_id,
        customer_id=body.customer.id,
        customer_email=body.customer.email,
        ship_to=body.ship_to.model_dump(),
        billing_address=body.billing_address.model_dump() if body.billing_address else None,
        promise=body.promise,
        allow_backorder=body.allow_backorder,
        allow_split=body.allow_split,
        currency=body.currency,
        shipping_amount=body.shipping_amount,
        tax_amount=body.tax_amount,
        payment_method=body.payment.method,
        payment_reported=body.payment.status,
        payment_amount=body.payment.amount,
        payment_reference=body.payment.reference,
        request_hash=body.request_hash(),
        lines=[IntakeLine(ln.sku, ln.qty, ln.unit_price) for ln in body.lines],
    )


async def _record(conn: AsyncConnection, body: OrderCreate, order_id: str) -> bool:
    """Record the order once; True if new, False if it was already recorded with the same data
    (a retry), 409 if the id is taken by another order or the data differs."""
    await _check_references(conn, body)
    intake = _intake(body, order_id)
    if await insert_order(conn, intake):
        return True
    existing = await recorded_as(conn, order_id)
    if existing is None or (existing.channel, existing.external_id) != (body.channel, body.external_id):
        raise Problem(409, f"order id {order_id} is taken", slug="conflict")
    if existing.request_hash != intake.request_hash:
        raise Problem(409, f"order {order_id} exists with other data", slug="conflict", order_id=order_id)
    return False


@router.post(
    "/v1/orders",
    status_code=202,
    response_model=OrderRead,
    responses={
        200: {"model": OrderRead, "description": "The order already exists with the same data."},
        409: {
            "description": "`/problems/insufficient-stock`: the order allows no backorder and the "
            "channel's ATP cannot cover it now (`lines`: sku, qty, available, rule), nothing was "
            "written; `/problems/conflict`: the order exists with other data."
        },
    },
    **guard(Role.channel, idempotency="required"),
)
async def create_order(
    request: Request,
    body: OrderCreate,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> JSONResponse:
    """Take an order and start its workflow (202, status `received`). The same `channel` +
    `external_id` again returns the existing order (200) if the data is the same, 409 if not;
    never a second order. A channel key orders for its own channel only. The Idempotency-Key's
    record commits with the intake rows (api.idempotency_keys.begin_with_key). An order with
    `allow_backorder` false that the stock cannot cover now is answered 409 insufficient-stock
    before anything is written (api.intake_refusal)."""
    if principal.role is Role.channel and body.channel != principal.channel:
        raise Problem(
            403, f"this key may only create orders for channel {principal.channel!r}", slug="forbidden"
        )
    total = _checked_total(body)
    order_id = order_workflow_id(body.channel, body.external_id)
    judged_on = await turn_away_if_short(request, engine, body, order_id)
    async with begin_with_key(engine, request) as conn:
        new = await _record(conn, body, order_id)
        # The answer is stored under the key by this commit (one write transaction for the
        # intake, the key and its answer): a crash before the start below leaves an order the
        # start sweep (api.order_starts) starts; a failed start frees the key (api.idempotency).
        order = await read_order_on(conn, order_id)
        answer = JSONResponse(
            order.model_dump(mode="json"),
            status_code=202 if new else 200,
            headers={"Location": f"/v1/orders/{order_id}"},
        )
        await store_with_write(conn, request, answer)
    if new and judged_on is not None:
        lines = [(ln.sku, ln.qty) for ln in body.lines]
        request.app.state.intake_stock.taken(order_id, body.channel, lines, judged_on)
    if new:  # what support searches by; masked in the line (runtime.log_masking)
        log.info(
            "order received",
            order_id=order_id,
            customer_email=body.customer.email,
            ship_to=body.ship_to.model_dump(),
            payment_reference=body.payment.reference,
            total=total,
        )
    # Started on every create, new or not: an order whose first start did not reach the engine
    # (503) gets its workflow when the channel retries; a running or finished one is left alone.
    await start_order(temporal, settings, order_id, body.channel, total)
    return answer


key_taken_with_the_write("POST", "/v1/orders")


# -- read ----------------------------------------------------------------------------

BAD_CURSOR = "the cursor is not valid (use next_cursor from the previous page)"


def _after(page: PageParams) -> tuple[datetime, str] | None:
    """The (created_at, id) the page starts after; 400 for a cursor that is not one of ours."""
    if not page.after:
        return None
    if len(page.after) != 2:
        raise Problem(400, BAD_CURSOR, slug="bad-cursor")
    try:
        return datetime.fromisoformat(str(page.after[0])), str(page.after[1])
    except ValueError:
        raise Problem(400, BAD_CURSOR, slug="bad-cursor") from None


@router.get("/v1/orders", response_model=Page[OrderRead], **guard(ANY))
async def list_orders(
    engine: EngineDep,
    page: PageDep,
    principal: CurrentPrincipal,
    status: Annotated[Literal[ORDER_STATUSES] | None, Query(description="One order status.")] = None,  # type: ignore[valid-type]
    channel: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    created_from: Annotated[datetime | None, Query(description="Created at or after (naive = UTC).")] = None,
    created_to: Annotated[datetime | None, Query(description="Created before (naive = UTC).")] = None,
) -> Page[OrderRead]:
    """Orders, oldest first. A channel key sees its own channel's orders only."""
    if status is not None and status not in ORDER_STATUSES:
        msg = f"must be one of {list(ORDER_STATUSES)}"
        raise Problem(
            422, f"status {msg}", slug="validation-error", errors=[{"loc": ["query", "status"], "msg": msg}]
        )
    where = OrderFilter(status, channel_scope(principal, channel), customer_id, created_from, created_to)
    items, last = await page_of_orders(engine, where, page.limit, _after(page))
    return Page(items=items, next_cursor=encode_cursor(list(last)) if last else None)


@router.get("/v1/orders/{order_id}", response_model=OrderRead, **guard(ANY))
async def get_order(order_id: str, engine: EngineDep, principal: CurrentPrincipal) -> OrderRead:
    """One order with its lines, shipments, holds and timeline (channel keys: own channel)."""
    return await read_order(engine, order_id, principal)


# -- actions -------------------------------------------------------------------------


@dataclass
class OrderActions(ProcessSteps):
    """The order as the caller may see it (404), then its workflow takes the update (`_take`)."""

    async def order(self, order_id: str) -> OrderRead:
        return await read_order(self.engine, order_id, self.who)


async def _take(act: OrderActions, order: OrderRead, name: str, arg: Any) -> OrderRead:
    """The order's workflow takes the update (its refusals: api.temporal); the order after it.
    A module function, not a method, so api.openapi finds the refusals it documents."""
    await update(act.updates, order.workflow_id, name, arg, workflow="Order", result_type=OrderSnapshot)
    return await read_order(act.engine, order.id)


ActionsDep = Annotated[OrderActions, Depends(built_in_loop(OrderActions))]


@router.post(
    "/v1/orders/{order_id}/cancel",
    response_model=OrderRead,
    **guard(Role.channel, idempotency="optional"),
)
async def cancel_order(order_id: str, body: CancelBody, act: ActionsDep) -> OrderRead:
    """Cancel the order, or some units of some lines. What has shipped cannot be cancelled (409).
    An order that has ended (completed, cancelled) is refused here, from the read model, with
    the business reason (409 `/problems/refused`: "order … is completed: nothing left to
    cancel"), before the engine is asked."""
    order = await act.order(order_id)
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
    if order.status in order_rules.DONE:
        _refuse_cancel_of_ended(order, lines)
    return await _take(act, order, "cancel", CancelRequest(body.reason, lines, by(act.who), act.actor))


def _refuse_cancel_of_ended(order: OrderRead, lines: dict[str, int] | None) -> None:
    """The refusal the order's rules give for a cancel of an order that has ended (its
    workflow is no longer running to say it)."""
    qty = {
        ln.line: order_rules.LineQty(
            ln.qty, ln.reserved, ln.backordered, ln.shipped, ln.cancelled, ln.returned
        )
        for ln in order.lines
    }
    try:
        order_rules.units_to_cancel(order.id, order.status, qty, lines)
    except DomainError as exc:
        raise as_problem(exc) from None
    raise as_problem(
        WrongState(f"order {order.id} is {order.status}: nothing left to cancel", status=order.status)
    )


@router.patch("/v1/orders/{order_id}/ship-to", response_model=OrderRead, **guard(Role.channel))
async def fix_ship_to(order_id: str, body: AddressIn, act: ActionsDep) -> OrderRead:
    """Correct the ship-to address (the order's workflow decides whether it may still change,
    and clears an `address_invalid` hold once the address is good)."""
    fix = ShipToFix(body.model_dump(), by(act.who), act.actor)
    return await _take(act, await act.order(order_id), "fix_ship_to", fix)


@router.post(
    "/v1/orders/{order_id}/payment",
    response_model=OrderRead,
    **guard(Role.channel, Role.finance, idempotency="optional"),
)
async def confirm_payment(order_id: str, body: PaymentBody, act: ActionsDep) -> OrderRead:
    """Report the payment of an order that was taken with payment `pending`."""
    pay = PaymentConfirmation(body.status, body.amount, body.reference, body.method, by(act.who), act.actor)
    return await _take(act, await act.order(order_id), "confirm_payment", pay)
