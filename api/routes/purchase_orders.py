"""Purchase orders, each a `po-{number}` workflow, and the supplier terms they are checked
against. Create records the PO (the number is the business key) and starts its workflow;
every later step is a workflow update, validated before any work (409 / 422)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.audit_trail import AuditDep
from api.auth import ANY, NOT_CHANNEL, Principal, Role, guard
from api.deps import EngineDep, SettingsDep, TemporalDep, built_in_loop
from api.pagination import PageDep, next_cursor
from api.problems import Problem
from api.process_steps import ProcessSteps
from api.read_models.purchase_orders import po_numbers_after, read_po, read_po_in, read_supplier_item
from api.schemas import Page
from api.schemas_purchasing import (
    BillBody,
    CancelBody,
    ConfirmBody,
    DecisionBody,
    PoCreate,
    PoRead,
    QcBody,
    ReceiptBody,
    SupplierItemBody,
    SupplierItemRead,
)
from api.temporal import start
from domain import purchasing as rules
from models import purchase_orders as pos
from workflows import search_attributes as sa
from workflows.contracts import (
    PURCHASE_ORDER_WORKFLOW,
    ApprovalDecision,
    BillLine,
    CancelPurchase,
    ConfirmedLine,
    PoSnapshot,
    PurchaseOrderInput,
    PurchaseTolerances,
    QcLine,
    QcRequest,
    Receipt,
    ReceiptLine,
    SupplierConfirmation,
    VendorBillIn,
    purchase_order_workflow_id,
)

router = APIRouter(tags=["purchasing"])


def _invalid(loc: list[str | int], msg: str, **extra: Any) -> Problem:
    return Problem(422, msg, slug="validation-error", errors=[{"loc": loc, "msg": msg, **extra}])


def _by(principal: Principal) -> str:
    return f"{principal.name} ({principal.key_id})"


# -- supplier items ----------------------------------------------------------------------------


@router.put("/v1/suppliers/{code}/items/{sku}", response_model=SupplierItemRead, **guard(Role.admin))
async def put_supplier_item(
    code: str, sku: str, body: SupplierItemBody, engine: EngineDep, audit: AuditDep
) -> SupplierItemRead:
    """A supplier's terms for a SKU: cost, currency, minimum order, order multiple, lead
    time and whether receipts are inspected. Replaces what was there."""
    async with audit.change(engine, "supplier_item", f"{code}/{sku}", "put") as (conn, change):
        known = await pos.kinds_of(conn, code, "", [sku])
        if known["supplier"] is None:
            raise Problem(404, f"supplier {code} was not found", slug="not-found")
        if known["skus"].get(sku) != "simple":
            raise _invalid(["path", "sku"], f"unknown SKU {sku!r} (kits are bought as their components)")
        terms = rules.SupplierTerms(
            sku, body.cost, body.currency, body.moq, body.order_multiple, 0, body.inspect
        )
        change.before = await pos.supplier_item_terms(conn, code, sku)
        await pos.upsert_supplier_item(conn, code, sku, terms, body.lead_time_days)
        item = await read_supplier_item(conn, code, sku)
        change.after = item.model_dump(mode="json")
    return item


@router.get("/v1/suppliers/{code}/items/{sku}", response_model=SupplierItemRead, **guard(ANY))
async def get_supplier_item(code: str, sku: str, engine: EngineDep) -> SupplierItemRead:
    async with engine.connect() as conn:
        return await read_supplier_item(conn, code, sku)


# -- create and read ---------------------------------------------------------------------------


async def _intake(conn: AsyncConnection, body: PoCreate) -> pos.PoIntake:
    """The PO as it will be recorded, or a 422 naming the field and the rule it breaks."""
    known = await pos.kinds_of(conn, body.supplier, body.location, [ln.sku for ln in body.lines])
    if known["supplier"] is None:
        raise _invalid(["body", "supplier"], f"unknown supplier {body.supplier!r}")
    if known["location_type"] in (None, "virtual", "dropship"):
        raise _invalid(["body", "location"], f"{body.location!r} is not a location that receives stock")
    terms = await pos.supplier_terms(conn, body.supplier, [ln.sku for ln in body.lines])
    currency = next(iter(terms.values())).currency if terms else "USD"
    problems = rules.line_problems([(ln.sku, ln.qty) for ln in body.lines], terms, currency)
    if problems:
        raise Problem(
            422,
            problems[0].message,
            slug="validation-error",
            errors=[{"loc": ["body", "lines", p.line], "msg": p.message, "rule": p.rule} for p in problems],
        )
    now = datetime.now(UTC)
    return pos.PoIntake(
        body.number,
        body.supplier,
        body.location,
        currency,
        body.expected_at or rules.expected_at(now, terms.values()),
        body.request_hash(),
        lines=[
            pos.PoIntakeLine(ln.sku, ln.qty, terms[ln.sku].cost if ln.unit_cost is None else ln.unit_cost)
            for ln in body.lines
        ],
    )


@router.post(
    "/v1/purchase-orders",
    status_code=202,
    response_model=PoRead,
    responses={
        200: {"model": PoRead, "description": "The purchase order already exists with the same data."}
    },
    **guard(Role.approver, idempotency="optional"),
)
async def create_purchase_order(
    body: PoCreate, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep
) -> JSONResponse:
    """Record the PO (its units show in `inbound` at once) and start its workflow; over the
    approval threshold it waits in `po_approval`. The same number and body again answers the
    PO (200); the same number with other data is a 409."""
    async with engine.begin() as conn:
        intake = await _intake(conn, body)
        if not await pos.insert_po(conn, intake):
            if await pos.request_hash_of(conn, body.number) != intake.request_hash:
                raise Problem(409, f"purchase order {body.number} exists with other data", slug="conflict")
            return JSONResponse(
                (await read_po_in(conn, body.number)).model_dump(mode="json"), status_code=200
            )
    po_input = PurchaseOrderInput(
        body.number,
        intake.value,
        rules.needs_approval(intake.value, settings.po_approval_threshold),
        settings.purchase_policies(),
        PurchaseTolerances(
            settings.po_over_receipt_tolerance,
            settings.bill_quantity_tolerance,
            settings.bill_value_tolerance,
        ),
    )
    attributes = TypedSearchAttributes([SearchAttributePair(sa.OMNI_STATUS, "draft")])
    await start(
        temporal,
        PURCHASE_ORDER_WORKFLOW,
        po_input,
        id=purchase_order_workflow_id(body.number),
        task_queue=settings.task_queue,
        search_attributes=attributes,
    )
    return JSONResponse((await read_po(engine, body.number)).model_dump(mode="json"), status_code=202)


@router.get("/v1/purchase-orders", response_model=Page[PoRead], **guard(*NOT_CHANNEL))
async def list_purchase_orders(
    engine: EngineDep,
    page: PageDep,
    status: Annotated[Literal[rules.PO_STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    supplier: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[PoRead]:
    if status is not None and status not in rules.PO_STATUSES:
        raise _invalid(["query", "status"], f"status must be one of {list(rules.PO_STATUSES)}")
    after = str(page.after[0]) if page.after else ""
    numbers = await po_numbers_after(engine, after, status, supplier, page.limit)
    items = [await read_po(engine, n) for n in numbers[: page.limit]]
    return Page(items=items, next_cursor=next_cursor(numbers, page.limit, lambda n: [n]))


@router.get("/v1/purchase-orders/{number}", response_model=PoRead, **guard(*NOT_CHANNEL))
async def get_purchase_order(number: str, engine: EngineDep) -> PoRead:
    return await read_po(engine, number)


# -- the steps ---------------------------------------------------------------------------------


@dataclass
class PoSteps(ProcessSteps):
    """A PO's step routes: the PO must exist (404), then its workflow takes the update."""

    @property
    def by(self) -> str:
        return _by(self.who)

    async def take(self, number: str, name: str, arg: object) -> PoRead:
        await read_po(self.engine, number)
        workflow_id = purchase_order_workflow_id(number)
        await self.send(workflow_id, name, arg, workflow=PURCHASE_ORDER_WORKFLOW, result_type=PoSnapshot)
        return await read_po(self.engine, number)


StepsDep = Annotated[PoSteps, Depends(built_in_loop(PoSteps))]
STEP = "/v1/purchase-orders/{number}/"


def _guard(role: Role) -> dict[str, Any]:
    return {"response_model": PoRead, **guard(role, idempotency="optional")}


@router.post(STEP + "approve", **_guard(Role.approver))
async def approve_purchase_order(number: str, body: DecisionBody, steps: StepsDep) -> PoRead:
    """Send a PO that waits in `po_approval` (409 if it does not)."""
    return await steps.take(
        number, "decide_approval", ApprovalDecision(True, body.reason, steps.by, steps.actor)
    )


@router.post(STEP + "reject", **_guard(Role.approver))
async def reject_purchase_order(number: str, body: CancelBody, steps: StepsDep) -> PoRead:
    """Cancel a PO that waits in `po_approval`, with the reason."""
    return await steps.take(
        number, "decide_approval", ApprovalDecision(False, body.reason, steps.by, steps.actor)
    )


@router.post(STEP + "confirm", **_guard(Role.admin))
async def confirm_purchase_order(number: str, body: ConfirmBody, steps: StepsDep) -> PoRead:
    """The supplier's confirmed quantity and promised date per line (a lower quantity lowers inbound)."""
    lines = [ConfirmedLine(ln.sku, ln.qty, _iso(ln.promised_at)) for ln in body.lines]
    return await steps.take(number, "confirm", SupplierConfirmation(lines, steps.by, steps.actor))


@router.post(STEP + "receipts", **_guard(Role.warehouse))
async def receive_purchase_order(number: str, body: ReceiptBody, steps: StepsDep) -> PoRead:
    """A delivery, keyed by its receipt number (the same receipt again changes nothing)."""
    lines = [
        ReceiptLine(ln.sku, ln.qty_received, ln.qty_damaged, ln.lot, _iso(ln.expires_at)) for ln in body.lines
    ]
    return await steps.take(
        number, "receive", Receipt(body.receipt, lines, body.final, steps.by, steps.actor)
    )


@router.post(STEP + "qc", **_guard(Role.warehouse))
async def inspect_purchase_order(number: str, body: QcBody, steps: StepsDep) -> PoRead:
    """Release quarantined units (pass → sellable) or reject them (to the vendor or scrap)."""
    lines = [QcLine(ln.sku, ln.qty, ln.result, ln.disposition) for ln in body.lines]
    return await steps.take(number, "inspect", QcRequest(lines, steps.by, steps.actor))


@router.post(STEP + "bills", **_guard(Role.finance))
async def bill_purchase_order(number: str, body: BillBody, steps: StepsDep) -> PoRead:
    """A vendor bill, matched three ways (each invoice number posts once)."""
    lines = [BillLine(ln.sku, ln.qty, ln.unit_cost) for ln in body.lines]
    return await steps.take(number, "bill", VendorBillIn(body.invoice_number, lines, steps.by, steps.actor))


@router.post(STEP + "cancel", **_guard(Role.admin))
async def cancel_purchase_order(number: str, body: CancelBody, steps: StepsDep) -> PoRead:
    """Cancel what has not been received: it leaves inbound."""
    return await steps.take(number, "cancel", CancelPurchase(body.reason, steps.by, steps.actor))


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
