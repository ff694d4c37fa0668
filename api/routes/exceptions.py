"""The human queues: every open exception of every workflow, and the one way to decide it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field
from sqlalchemy import text

from api.audit_trail import AuditDep
from api.auth import CurrentPrincipal, Role, guard
from api.deps import EngineDep, SettingsDep, UpdatesDep
from api.pagination import PageDep, next_cursor
from api.problems import Problem, not_found
from api.schemas import Page, RequestModel, ResponseModel
from api.temporal import update
from domain.exception_actions import check_data, data_schema
from domain.exceptions import may_resolve
from workflows.contracts import Resolution

router = APIRouter(tags=["exceptions"])
QUEUE_ROLES = (Role.approver, Role.warehouse, Role.finance)


class Subject(ResponseModel):
    type: str
    id: str


class ActionSchema(ResponseModel):
    name: str
    data_schema: dict[str, Any] = Field(
        description="JSON Schema of the action's `data` (domain/exception_actions.py)."
    )


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
    action_schemas: list[ActionSchema] = Field(
        default_factory=list, description="Each of `actions` with the schema of the `data` it takes."
    )


def _read(row: Any) -> ExceptionRead:
    data = dict(row._mapping)
    data["subject"] = Subject(type=data.pop("subject_type"), id=data.pop("subject_id"))
    data["action_schemas"] = [ActionSchema(name=a, data_schema=data_schema(a)) for a in data["actions"]]
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
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="The action's data, as the exception's `action_schemas` declare it (e.g. "
        "`{ship_to: {...}}` for fix_address); `{}` for an action that takes none.",
    )


class ResolveAccepted(ResponseModel):
    exception: ExceptionRead
    accepted: bool = True


@router.post(
    "/v1/exceptions/{exception_id}/resolve",
    response_model=ResolveAccepted,
    responses={202: {"description": "Accepted; not carried out within the RPC timeout (`resolving`)."}},
    **guard(*QUEUE_ROLES, idempotency="optional"),
)
async def resolve_exception(
    exception_id: str,
    body: ResolveBody,
    response: Response,
    engine: EngineDep,
    updates: UpdatesDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    audit: AuditDep,
) -> ResolveAccepted:
    """Decide an exception. Checked here first: 403 for a role that may not decide this kind,
    409 `already-resolved` if it is decided, 422 if the action is not one of `actions` or its
    `data` is not the action's declared data (`action_schemas`; the error names the field).
    Then the owning workflow is asked (its validator may still refuse, with the business
    reason) and carries the decision out in an activity that closes the row.

    The answer shows the decision: the route waits, within OMNIFLOW_RPC_TIMEOUT_SECONDS in
    all, until the row is no longer open and answers **200** with the exception as it now is
    (status `resolved` or `cancelled`, `resolution`, `resolved_by`). If the workflow has not
    carried it out by then (a busy or restarting worker) it answers **202** with the
    exception's status shown as `resolving` and a `Location` to read it from later."""
    started = time.monotonic()
    current = await get_exception(exception_id, engine)
    _check_decidable(current, body.action, principal.role)
    _check_data(body.action, body.data)
    resolution = Resolution(
        exception_id=exception_id,
        action=body.action,
        note=body.note,
        resolved_by=f"{principal.name} ({principal.key_id})",
        data=body.data,
        actor=audit.actor,  # the activity that closes the row appends the audit row with it
    )
    try:
        await update(
            updates,
            current.workflow_id,
            "resolve_exception",
            resolution,
            workflow=current.subject.type,
            result_type=str,
        )
    except Problem as exc:
        raise await _refusal(exc, current, engine) from exc
    decided = await _wait_decided(exception_id, engine, started + settings.rpc_timeout_seconds)
    if decided.status == "open":
        response.status_code = 202
        response.headers["Location"] = f"/v1/exceptions/{exception_id}"
        decided = decided.model_copy(update={"status": "resolving"})
    return ResolveAccepted(exception=decided)


async def _wait_decided(exception_id: str, engine: Any, deadline: float) -> ExceptionRead:
    """The exception once its row is no longer open, or as it is at `deadline`."""
    pause = 0.02
    while True:
        current = await get_exception(exception_id, engine)
        if current.status != "open" or time.monotonic() + pause > deadline:
            return current
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)


async def _refusal(exc: Problem, current: ExceptionRead, engine: Any) -> Problem:
    """A refusal of the workflow as the business reason: an exception decided meanwhile is
    409 `already-resolved` (as when it was decided before the request), one whose workflow
    has finished is 409 `refused` saying so; the workflow's own refusals pass unchanged."""
    if exc.status_code != 409:
        return exc
    now = await get_exception(current.id, engine)
    if now.status != "open":
        return _already_decided(now)
    if exc.slug == "refused" and current.workflow_id in str(exc.detail):  # api.temporal: finished
        subject = f"{current.subject.type} {current.subject.id}"
        return Problem(
            409,
            f"exception {current.id} can no longer be decided: {subject} has finished",
            slug="refused",
            current_status=now.status,
        )
    return exc


def _already_decided(current: ExceptionRead) -> Problem:
    return Problem(
        409,
        f"exception {current.id} is already {current.status}",
        slug="already-resolved",
        current_status=current.status,
    )


def _check_data(action: str, data: dict[str, Any]) -> None:
    """422 naming each field of `data` that is not the action's declared data."""
    problems = check_data(action, data)
    if problems:
        errors = [{"loc": ["body", "data", *p.loc], "msg": p.message} for p in problems]
        first = problems[0]
        raise Problem(
            422,
            f"data.{'.'.join(first.loc)} {first.message} (action {action!r})",
            slug="validation-error",
            errors=errors,
        )


def _check_decidable(current: ExceptionRead, action: str, role: Role) -> None:
    """403 if the role may not decide this kind, 409 if it is decided already, 422 if the
    action is not one of its actions."""
    if not may_resolve(role, current.kind):
        raise Problem(403, f"role '{role}' may not decide {current.kind}", slug="forbidden")
    if current.status != "open":
        raise _already_decided(current)
    if action not in current.actions:
        raise Problem(
            422,
            f"action {action!r} is not one of {current.actions}",
            slug="validation-error",
            errors=[{"loc": ["body", "action"], "msg": f"must be one of {current.actions}"}],
        )
