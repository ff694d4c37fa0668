"""The human queues: every open exception of every workflow, and the one way to decide it."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy import text

from api.auth import CurrentPrincipal, Role, guard
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.pagination import PageDep, next_cursor
from api.problems import Problem, not_found
from api.schemas import Page, RequestModel, ResponseModel
from api.temporal import update
from domain.exceptions import may_resolve
from workflows.contracts import Resolution

router = APIRouter(tags=["exceptions"])
QUEUE_ROLES = (Role.approver, Role.warehouse, Role.finance)


class Subject(ResponseModel):
    type: str
    id: str


class ExceptionRead(ResponseModel):
    id: str
    kind: str
    subject: Subject
    status: str
    opened_at: datetime
    due_at: datetime
    escalation_level: int
    priority: float
    value_at_risk: int
    actions: list[str]
    workflow_id: str
    details: dict[str, Any]
    resolution: dict[str, Any] | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None


def _read(row: Any) -> ExceptionRead:
    data = dict(row._mapping)
    data["subject"] = Subject(type=data.pop("subject_type"), id=data.pop("subject_id"))
    return ExceptionRead.model_validate(data)


_ORDER = {
    # sort -> (ORDER BY, cursor columns)
    "priority": (
        "priority DESC, id",
        "(-priority, id) > (CAST(:c0 AS float8), CAST(:c1 AS text))",
        ("priority", "id"),
    ),
    "due_at": (
        "due_at, id",
        "(due_at, id) > (CAST(:c0 AS timestamptz), CAST(:c1 AS text))",
        ("due_at", "id"),
    ),
    "opened_at": (
        "opened_at, id",
        "(opened_at, id) > (CAST(:c0 AS timestamptz), CAST(:c1 AS text))",
        ("opened_at", "id"),
    ),
}


_FILTERS = (
    "(CAST(:kind AS text) IS NULL OR kind = :kind) AND (CAST(:st AS text) IS NULL OR status = :st) AND "
    "(CAST(:stype AS text) IS NULL OR subject_type = :stype) AND (CAST(:sid AS text) IS NULL OR subject_id = :sid)"
)


@router.get("/v1/exceptions", response_model=Page[ExceptionRead], **guard(*QUEUE_ROLES))
async def list_exceptions(
    engine: EngineDep,
    page: PageDep,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[Literal["open", "resolved", "cancelled"] | None, Query()] = "open",
    subject_type: Annotated[str | None, Query(max_length=20)] = None,
    subject_id: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[Literal["priority", "due_at", "opened_at"], Query()] = "priority",
) -> Page[ExceptionRead]:
    """Every human wait in the system. `sort=priority` (default) puts the most money at risk,
    the most escalated and the closest to its SLA first (formula in domain/exceptions.py)."""
    order, after_sql, cursor_cols = _ORDER[sort]
    params: dict[str, Any] = {
        "kind": kind,
        "st": status,
        "stype": subject_type,
        "sid": subject_id,
        "lim": page.limit + 1,
    }
    where = _FILTERS
    if page.after:
        where += f" AND {after_sql}"
        params.update(_after(page.after, sort))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(f"SELECT * FROM exception WHERE {where} ORDER BY {order} LIMIT :lim"),  # noqa: S608
                params,
            )
        ).all()
    items = [_read(r) for r in rows[: page.limit]]
    return Page(
        items=items, next_cursor=next_cursor(list(rows), page.limit, partial(_cursor_of, cursor_cols))
    )


def _cursor_of(cursor_cols: tuple[str, ...], row: Any) -> list[Any]:
    return [str(row._mapping[c]) if c != "priority" else float(row._mapping[c]) for c in cursor_cols]


def _after(after: list[Any], sort: str) -> dict[str, Any]:
    """The parameters of the page cursor's condition (400 if the cursor is not one of `sort`)."""
    if len(after) != 2:
        raise Problem(400, "the cursor is not valid for this sort", slug="bad-cursor")
    first = after[0]
    return {"c0": -float(first) if sort == "priority" else first, "c1": str(after[1])}


@router.get("/v1/exceptions/{exception_id}", response_model=ExceptionRead, **guard(*QUEUE_ROLES))
async def get_exception(exception_id: str, engine: EngineDep) -> ExceptionRead:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM exception WHERE id = :i"), {"i": exception_id})).first()
    if row is None:
        raise not_found(f"exception {exception_id}")
    return _read(row)


class ResolveBody(RequestModel):
    action: str = Field(min_length=1, max_length=40)
    note: str = Field(default="", max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict, description="Action data (e.g. a corrected quantity).")


class ResolveAccepted(ResponseModel):
    exception: ExceptionRead
    accepted: bool = True


@router.post(
    "/v1/exceptions/{exception_id}/resolve",
    response_model=ResolveAccepted,
    **guard(*QUEUE_ROLES, idempotency="optional"),
)
async def resolve_exception(
    exception_id: str,
    body: ResolveBody,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> ResolveAccepted:
    """Decide an exception. The owning workflow validates the action at once (422 if it is not
    one of `actions`, 409 if already decided) and carries it out; the row closes when done."""
    current = await get_exception(exception_id, engine)
    _check_decidable(current, body.action, principal.role)
    resolution = Resolution(
        exception_id=exception_id,
        action=body.action,
        note=body.note,
        resolved_by=f"{principal.name} ({principal.key_id})",
        data=body.data,
    )
    await update(
        temporal,
        current.workflow_id,
        "resolve_exception",
        resolution,
        workflow=current.subject.type,
        rpc_seconds=settings.rpc_timeout_seconds,
        result_type=str,
    )
    return ResolveAccepted(exception=await get_exception(exception_id, engine))


def _check_decidable(current: ExceptionRead, action: str, role: Role) -> None:
    """403 if the role may not decide this kind, 409 if it is decided already, 422 if the
    action is not one of its actions."""
    if not may_resolve(role, current.kind):
        raise Problem(403, f"role '{role}' may not decide {current.kind}", slug="forbidden")
    if current.status != "open":
        raise Problem(
            409,
            f"exception {current.id} is already {current.status}",
            slug="already-resolved",
            current_status=current.status,
        )
    if action not in current.actions:
        raise Problem(
            422,
            f"action {action!r} is not one of {current.actions}",
            slug="validation-error",
            errors=[{"loc": ["body", "action"], "msg": f"must be one of {current.actions}"}],
        )
