"""The audit trail: every human action, newest first, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Role, guard
from api.deps import EngineDep, single_read
from api.pagination import PageDep, next_cursor
from api.problems import Problem
from api.schemas import Page
from api.schemas_audit import AuditEntryRead, entry_read
from models import audit as trail

router = APIRouter(tags=["audit"])


def _bad_cursor() -> Problem:
    return Problem(400, "the cursor is not valid (use next_cursor from the previous page)", slug="bad-cursor")


@router.get("/v1/audit", response_model=Page[AuditEntryRead], **guard(Role.admin))
async def list_audit(
    engine: EngineDep,
    page: PageDep,
    actor: Annotated[str | None, Query(max_length=40, description="An API key id.")] = None,
    object: Annotated[  # the contract's name for the filter
        str | None,
        Query(max_length=250, description="`type` (e.g. `sku`) or `type:id` (e.g. `sku:TEE-M`)."),
    ] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    from_: Annotated[datetime | None, Query(alias="from", description="At or after (RFC 3339).")] = None,
    to: Annotated[datetime | None, Query(description="Before (RFC 3339).")] = None,
) -> Page[AuditEntryRead]:
    """Who did what, when, and with which request: key creation and revocation, master data,
    policies and publishing targets, stock adjustments and moves, exception decisions and the
    steps people take on orders, purchase orders, returns and transfers. Newest first; the
    rows cannot be changed or deleted (docs/audit.md)."""
    object_type, _, object_id = (object or "").partition(":")
    where = trail.AuditFilter(
        actor=actor,
        object_type=object_type or None,
        object_id=object_id or None,
        action=action,
        since=from_,
        until=to,
    )
    before_id = None
    if page.after:
        if len(page.after) != 1 or not isinstance(page.after[0], int):
            raise _bad_cursor()
        before_id = page.after[0]
    async with single_read(engine) as conn:
        rows = await trail.entries(conn, where, before_id, page.limit + 1)
    return Page(
        items=[entry_read(r) for r in rows[: page.limit]],
        next_cursor=next_cursor(rows, page.limit, lambda r: [r.id]),
    )
