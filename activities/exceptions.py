"""Exception rows: opened once per business key, escalated, closed by the activity that
carries out the resolution (so the row and the business change commit together)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.metrics import EXCEPTIONS_CLOSED, EXCEPTIONS_ESCALATED, EXCEPTIONS_OPENED, after_commit
from domain.exceptions import priority
from models import audit as trail
from runtime.logging import get_logger
from workflows.contracts import (
    CLOSE_EXCEPTION,
    ESCALATE_EXCEPTION,
    OPEN_EXCEPTION,
    WITHDRAW_EXCEPTION,
    Escalate,
    OpenedException,
    OpenException,
    Resolution,
    WithdrawException,
)

log = get_logger("omniflow.exceptions")


async def close_exception_row(
    conn: AsyncConnection, resolution: Resolution, status: str = "resolved"
) -> None:
    """Close the row inside the caller's transaction (idempotent: a retry finds it closed).
    A person's decision (`resolution.actor`) appends its audit row in the same transaction,
    only when this call is the one that closed the row; counted when that transaction commits."""
    decision = {"action": resolution.action, "note": resolution.note, "data": resolution.data or {}}
    closed = (
        await conn.execute(
            text(
                "UPDATE exception SET status = :st, resolution = CAST(:res AS jsonb), resolved_at = now(),"
                " resolved_by = :by WHERE id = :id AND status = 'open'"
                " RETURNING kind, subject_type, subject_id, escalation_level"
            ),
            {
                "st": status,
                "id": resolution.exception_id,
                "by": resolution.resolved_by or None,
                "res": json.dumps(decision),
            },
        )
    ).first()
    if closed is not None:
        before = {
            "status": "open",
            "kind": closed.kind,
            "subject": {"type": closed.subject_type, "id": closed.subject_id},
            "escalation_level": closed.escalation_level,
        }
        obj = trail.AuditObject("exception", resolution.exception_id)
        key = f"exception:{resolution.exception_id}"
        after = {"status": status, **decision}
        await trail.step(conn, resolution.actor, "resolve", obj, key, before=before, after=after)
        count_closed(conn, [closed.kind], status)


def count_closed(conn: AsyncConnection, kinds: list[str], status: str) -> None:
    """omniflow_exceptions_closed_total, once the closing transaction commits."""

    def count() -> None:
        for kind in kinds:
            EXCEPTIONS_CLOSED.labels(kind, status).inc()

    if kinds:
        after_commit(conn, count)


class ExceptionActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @OPEN_EXCEPTION.implement
    async def open_exception(self, req: OpenException) -> OpenedException:
        now = datetime.now(UTC)
        sla = timedelta(seconds=req.sla_seconds)
        due = now + sla
        prio = priority(req.value_at_risk, 0, sla, sla)
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        WITH ins AS (
                            INSERT INTO exception (id, key, kind, subject_type, subject_id, workflow_id, status,
                                opened_at, due_at, escalation_level, priority, value_at_risk, actions, details)
                            VALUES (:id, :key, :kind, :st, :sid, :wf, 'open', :now, :due, 0, :prio, :var,
                                CAST(:actions AS jsonb), CAST(:details AS jsonb))
                            ON CONFLICT (key) DO NOTHING
                            RETURNING id, due_at, priority
                        )
                        SELECT id, due_at, priority, true AS inserted FROM ins
                        UNION ALL SELECT id, due_at, priority, false FROM exception WHERE key = :key
                        LIMIT 1
                        """
                    ),
                    {
                        "id": "exc_" + secrets.token_urlsafe(12),
                        "key": req.key,
                        "kind": req.kind,
                        "st": req.subject_type,
                        "sid": req.subject_id,
                        "wf": req.workflow_id,
                        "now": now,
                        "due": due,
                        "prio": prio,
                        "var": req.value_at_risk,
                        "actions": json.dumps(req.actions),
                        "details": json.dumps(req.details, default=str),
                    },
                )
            ).one()
        if row.inserted:  # not a retry that found the row its first attempt committed
            EXCEPTIONS_OPENED.labels(req.kind).inc()
        log.info("exception opened", exception_id=row.id, kind=req.kind, subject=req.subject_id)
        return OpenedException(id=row.id, due_at=row.due_at.isoformat(), priority=float(row.priority))

    @ESCALATE_EXCEPTION.implement
    async def escalate_exception(self, req: Escalate) -> OpenedException:
        """Raise the level to `req.level` (idempotent: setting the same level twice is a no-op)."""
        now = datetime.now(UTC)
        sla = timedelta(seconds=req.sla_seconds)
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "UPDATE exception e SET escalation_level = GREATEST(e.escalation_level, :lvl),"
                        " due_at = CASE WHEN e.escalation_level < :lvl THEN :due ELSE e.due_at END,"
                        " priority = CASE WHEN e.escalation_level < :lvl THEN :prio ELSE e.priority END"
                        " FROM (SELECT id, escalation_level FROM exception WHERE id = :id FOR UPDATE) before"
                        " WHERE e.id = before.id"
                        " RETURNING e.id, e.due_at, e.priority, e.status, e.kind,"
                        " before.escalation_level < :lvl AS raised"
                    ),
                    {
                        "id": req.id,
                        "lvl": req.level,
                        "due": now + sla,
                        "prio": priority(req.value_at_risk, req.level, sla, sla),
                    },
                )
            ).one()
        if row.raised:  # not a retry of a level its first attempt committed
            EXCEPTIONS_ESCALATED.labels(row.kind).inc()
        log.warning("exception escalated", exception_id=req.id, level=req.level)
        return OpenedException(id=row.id, due_at=row.due_at.isoformat(), priority=float(row.priority))

    @CLOSE_EXCEPTION.implement
    async def close_exception(self, resolution: Resolution) -> None:
        async with self.engine.begin() as conn:
            await close_exception_row(conn, resolution)

    @WITHDRAW_EXCEPTION.implement
    async def withdraw_exception(self, inp: WithdrawException) -> None:
        """The reason for the exception went away (stock arrived, the order was cancelled):
        the row closes as `cancelled`, decided by nobody."""
        if not inp.exception_id:
            return
        async with self.engine.begin() as conn:
            await close_exception_row(
                conn, Resolution(inp.exception_id, "withdrawn", inp.why, "system"), status="cancelled"
            )
