"""Returns (RMAs), each a `rma-{number}` workflow, the managed list of return reasons, and a
customer's store credit.

Create assesses the return against what the order shipped under the order's row lock (so two
returns racing for the same units cannot together exceed what shipped: the second sees the
first's units), records it with its fees and keep-the-item lines, and starts its workflow;
every later step (receive, inspect, cancel) is a workflow update, validated before any work
(409 / 422). Shapes: api/schemas_returns.py; the read model: api/read_models/returns.py; the
rules: domain/returns.py."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.audit_trail import AuditDep
from api.auth import ANY, CurrentPrincipal, Role, channel_scope, guard, see
from api.deps import EngineDep, SettingsDep, TemporalDep, built_in_loop
from api.pagination import PageDep, next_cursor
from api.problems import Problem, conflict
from api.process_steps import ProcessSteps
from api.read_models.returns import (
    ReturnFilter,
    read_reasons,
    read_return,
    read_store_credit,
    return_numbers_after,
)
from api.routes.orders import by
from api.schemas import Page
from api.schemas_returns import (
    CancelReturnBody,
    InspectBody,
    ReasonBody,
    ReasonRead,
    ReceiveBody,
    ReturnCreate,
    ReturnRead,
    StoreCreditRead,
)
from api.temporal import start
from domain import returns as rules
from models import order_store
from models import return_store as store
from runtime.settings import Settings
from workflows import search_attributes as sa
from workflows.contracts import (
    RETURN_WORKFLOW,
    CancelReturn,
    InspectedUnits,
    Inspection,
    OrderInput,
    ParcelReceipt,
    ReturnedUnits,
    ReturnInput,
    ReturnSnapshot,
    return_workflow_id,
)

router = APIRouter(tags=["returns"])
Loc = list[str | int]


def _refused(problems: Sequence[tuple[Loc, str, str]]) -> Problem:
    """A 422 naming each (location, message, rule), the first one's message as the detail."""
    errors = [{"loc": loc, "msg": msg, "rule": rule} for loc, msg, rule in problems]
    return Problem(422, problems[0][1], slug="validation-error", errors=errors)


# -- reasons -----------------------------------------------------------------------------------


@router.get("/v1/return-reasons", response_model=list[ReasonRead], **guard(ANY))
async def list_return_reasons(engine: EngineDep) -> list[ReasonRead]:
    """The managed list of return reasons, by code, with their fees."""
    async with engine.connect() as conn:
        return await read_reasons(conn)


@router.post(
    "/v1/return-reasons",
    status_code=201,
    response_model=ReasonRead,
    responses={200: {"model": ReasonRead, "description": "The reason existed: it is as sent now."}},
    **guard(Role.admin, idempotency="optional"),
)
async def put_return_reason(body: ReasonBody, engine: EngineDep, audit: AuditDep) -> JSONResponse:
    """Add a reason (201) or change one, its label or fees (200; the same reason again
    changes nothing). Returns already recorded keep the fees they were assessed with."""
    reason = rules.Reason(body.code, body.label, body.fee_amount, body.fee_percent, body.defect)
    async with audit.change(engine, "return_reason", body.code, "put") as (conn, change):
        before = (await store.reasons(conn)).get(body.code)
        change.happened = before != reason  # the same reason again: nothing changed, no row
        if change.happened:
            await store.put_reason(conn, reason)
        change.before = before.__dict__ if before else None
        change.after = reason.__dict__
    read = ReasonRead.model_validate(reason.__dict__)
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if before is None else 200)


# -- create ------------------------------------------------------------------------------------


def _shape_problems(body: ReturnCreate) -> list[tuple[Loc, str, str]]:
    """What the body breaks that needs no data: a SKU twice, the exchange's lines."""
    out: list[tuple[Loc, str, str]] = []
    for field, lines in (("lines", body.lines), ("exchange_lines", body.exchange_lines)):
        skus = [ln.sku for ln in lines]
        twice = [i for i, sku in enumerate(skus) if sku in skus[:i]]
        out += [
            (["body", field, i], f"{field} {i}: SKU {skus[i]!r} is listed twice", "duplicate") for i in twice
        ]
    if body.outcome == rules.EXCHANGE and not body.exchange_lines:
        out.append((["body", "exchange_lines"], "an exchange names the SKUs it is for", "required"))
    if body.outcome != rules.EXCHANGE and body.exchange_lines:
        out.append((["body", "exchange_lines"], f"a {body.outcome} has no exchange lines", "not_exchange"))
    return out


async def _unknown_skus(conn: AsyncConnection, body: ReturnCreate) -> list[tuple[Loc, str, str]]:
    wanted = [ln.sku for ln in body.exchange_lines]
    found = await conn.execute(text("SELECT code FROM sku WHERE code = ANY(:c)"), {"c": wanted})
    known = set(found.scalars())
    return [
        (["body", "exchange_lines", i], f"exchange line {i}: unknown SKU {sku!r}", "unknown_sku")
        for i, sku in enumerate(wanted)
        if sku not in known
    ]


def _new_order_lines(body: ReturnCreate) -> list[dict[str, Any]]:
    if body.outcome == rules.EXCHANGE:
        return [{"sku": ln.sku, "qty": ln.qty, "unit_price": ln.unit_price} for ln in body.exchange_lines]
    if body.outcome == rules.REPLACEMENT:
        return [{"sku": ln.sku, "qty": ln.qty, "unit_price": 0} for ln in body.lines]
    return []


async def _intake(
    conn: AsyncConnection, body: ReturnCreate, number: str, order: Row[Any], settings: Settings
) -> store.ReturnIntake:
    """The return as it will be recorded, or a 422 naming the line and the rule it breaks."""
    problems = _shape_problems(body) or await _unknown_skus(conn, body)
    if problems:
        raise _refused(problems)
    shipped = await store.shipped_lines(conn, order.id, number)
    reasons = await store.reasons(conn)
    now = datetime.now(UTC)
    wanted = [rules.WantedLine(ln.sku, ln.qty, ln.reason) for ln in body.lines]
    assessment = rules.assess(wanted, shipped, reasons, now)
    if assessment.refused:
        raise _refused([(["body", "lines", p.line], p.message, p.rule) for p in assessment.refused])
    lines = []
    for ln in body.lines:
        line = shipped[ln.sku]
        value = ln.qty * line.unit_price
        fee = rules.line_fee(reasons[ln.reason], value, body.outcome, settings.return_fee_free_outcomes)
        keep = rules.keep_it(value, settings.return_keep_threshold, body.outcome)
        lines.append(store.IntakeLine(ln.sku, line.line, ln.qty, ln.reason, line.unit_price, keep, fee))
    return store.ReturnIntake(
        number=number,
        order_id=order.id,
        channel=order.channel,
        customer_id=order.customer_id,
        currency=order.currency,
        outcome=body.outcome,
        instant=body.instant and body.outcome in rules.NEW_ORDER_OUTCOMES,
        needs_approval=bool(assessment.for_approval),
        approval_reasons=[
            {"line": p.line, "rule": p.rule, "message": p.message} for p in assessment.for_approval
        ],
        new_order_lines=_new_order_lines(body),
        deadline_at=now + timedelta(days=settings.return_parcel_days),
        request_hash=body.request_hash(),
        lines=lines,
    )


async def _record(
    conn: AsyncConnection, body: ReturnCreate, number: str, order: Row[Any], settings: Settings
) -> bool:
    """Record the return once: True if new, False if it was recorded with the same data (a
    retry); 409 if the number is taken by other data."""
    recorded = await store.request_hash_of(conn, number)
    if recorded is None:
        if await store.insert_return(conn, await _intake(conn, body, number, order, settings)):
            return True
        recorded = await store.request_hash_of(conn, number)
    if recorded != body.request_hash():
        raise conflict(f"return {number} exists with other data", number=number)
    return False


def _return_input(read: ReturnRead, settings: Settings) -> ReturnInput:
    new_order = None
    if read.outcome in rules.NEW_ORDER_OUTCOMES:
        new_order = OrderInput(
            order_id="",
            channel=read.channel,
            value=0,
            policies=settings.order_policies(),
            backorder_aging_seconds=settings.backorder_aging_seconds,
            backorder_recheck_seconds=settings.backorder_recheck_seconds,
        )
    return ReturnInput(
        number=read.number,
        needs_approval=read.needs_approval,
        outcome=read.outcome,
        instant=read.instant,
        value=sum(ln.qty * ln.unit_price for ln in read.lines),
        parcel_seconds=int(settings.return_parcel_days * 86_400),
        policies=settings.return_policies(),
        new_order=new_order,
        refund_approval_threshold=settings.refund_approval_threshold,
        store_credit_bonus_percent=settings.store_credit_bonus_percent,
    )


async def _start_return(temporal: Client, settings: Settings, read: ReturnRead) -> None:
    attributes = TypedSearchAttributes([SearchAttributePair(sa.OMNI_STATUS, rules.REQUESTED)])
    arg = _return_input(read, settings)
    queue = settings.task_queue
    await start(
        temporal, RETURN_WORKFLOW, arg, id=read.workflow_id, task_queue=queue, search_attributes=attributes
    )


@router.post(
    "/v1/returns",
    status_code=202,
    response_model=ReturnRead,
    responses={200: {"model": ReturnRead, "description": "The return already exists with the same data."}},
    **guard(Role.channel, idempotency="required"),
)
async def create_return(
    body: ReturnCreate, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep, who: CurrentPrincipal
) -> JSONResponse:
    """Ask for a return of shipped units, a reason a line, and the outcome wanted. Policy
    authorizes it at once or sends it to `return_approval`; a line it refuses is a 422
    naming the line and the rule. The same number and body again answers the return (200);
    the same number with other data is a 409. A channel key returns its own orders only."""
    number = body.number or f"RMA-{secrets.token_hex(5).upper()}"
    async with engine.begin() as conn:
        order = await order_store.lock_order(conn, body.order)
        see(who, order.channel if order is not None else None, f"order {body.order}")
        assert order is not None
        new = await _record(conn, body, number, order, settings)
    # Started on a retry too: a return whose first start did not reach the engine (503) gets
    # its workflow when the caller retries; a running or finished one is left alone.
    await _start_return(temporal, settings, await read_return(engine, number))
    read = await read_return(engine, number)
    return JSONResponse(
        read.model_dump(mode="json"),
        status_code=202 if new else 200,
        headers={"Location": f"/v1/returns/{number}"},
    )


# -- read --------------------------------------------------------------------------------------

StatusFilter = Literal[rules.RETURN_STATUSES]  # type: ignore[valid-type]
OutcomeFilter = Literal[rules.OUTCOMES]  # type: ignore[valid-type]


@router.get("/v1/returns", response_model=Page[ReturnRead], **guard(ANY))
async def list_returns(
    engine: EngineDep,
    page: PageDep,
    who: CurrentPrincipal,
    status: Annotated[StatusFilter | None, Query()] = None,
    order: Annotated[str | None, Query(max_length=200, description="An order's id.")] = None,
    outcome: Annotated[OutcomeFilter | None, Query()] = None,
) -> Page[ReturnRead]:
    """By number. A channel key sees its own channel's returns only."""
    where = ReturnFilter(status, order, outcome, channel_scope(who, None))
    after = str(page.after[0]) if page.after else ""
    numbers = await return_numbers_after(engine, after, where, page.limit)
    items = [await read_return(engine, n) for n in numbers[: page.limit]]
    return Page(items=items, next_cursor=next_cursor(numbers, page.limit, lambda n: [n]))


@router.get("/v1/returns/{number}", response_model=ReturnRead, **guard(ANY))
async def get_return(number: str, engine: EngineDep, who: CurrentPrincipal) -> ReturnRead:
    """The return with its lines, amounts, refunds, open holds and timeline."""
    return await read_return(engine, number, who)


@router.get(
    "/v1/customers/{customer_id}/store-credit",
    response_model=StoreCreditRead,
    **guard(Role.channel, Role.finance),
)
async def get_store_credit(customer_id: str, engine: EngineDep, who: CurrentPrincipal) -> StoreCreditRead:
    """The customer's store credit balance and its entries, newest first (a channel key:
    customers with an order in its channel)."""
    return await read_store_credit(engine, customer_id, who)


# -- the steps ---------------------------------------------------------------------------------


@dataclass
class ReturnSteps(ProcessSteps):
    """A return's step routes: the return must exist for the caller (404), then its workflow
    takes the update."""

    async def take(self, number: str, name: str, arg: object) -> ReturnRead:
        await read_return(self.engine, number, self.who)
        workflow_id = return_workflow_id(number)
        await self.send(workflow_id, name, arg, workflow=RETURN_WORKFLOW, result_type=ReturnSnapshot)
        return await read_return(self.engine, number)


StepsDep = Annotated[ReturnSteps, Depends(built_in_loop(ReturnSteps))]
STEP = "/v1/returns/{number}/"


def _step(*roles: Role) -> dict[str, Any]:
    return {"response_model": ReturnRead, **guard(*roles, idempotency="optional")}


@router.post(STEP + "receive", **_step(Role.warehouse))
async def receive_return(number: str, body: ReceiveBody, steps: StepsDep) -> ReturnRead:
    """What arrived of the parcel, at a location: the units move from the customer into the
    `returns` bucket. A parcel may arrive in parts; more than is due is refused."""
    units = [ReturnedUnits(ln.sku, ln.qty) for ln in body.lines]
    return await steps.take(
        number, "receive", ParcelReceipt(body.location, units, by(steps.who), steps.actor)
    )


@router.post(STEP + "inspect", **_step(Role.warehouse))
async def inspect_return(number: str, body: InspectBody, steps: StepsDep) -> ReturnRead:
    """The condition and disposition of received units: restock, refurbish, quarantine, scrap
    or return to the vendor."""
    units = [InspectedUnits(ln.sku, ln.qty, ln.condition, ln.disposition) for ln in body.lines]
    return await steps.take(number, "inspect", Inspection(units, by(steps.who), steps.actor))


@router.post(STEP + "cancel", **_step(Role.channel))
async def cancel_return(number: str, body: CancelReturnBody, steps: StepsDep) -> ReturnRead:
    """Cancel a return before its parcel arrives (the stock held for its new order goes back)."""
    return await steps.take(number, "cancel", CancelReturn(body.reason, by(steps.who), steps.actor))
