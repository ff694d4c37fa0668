"""Channel publishing: a channel's webhook target (its signing secret answered once), a full
resync, and the publisher's status. Setting a target starts the channel's `publish-{channel}`
workflow if it is not running and pokes it, so a change takes effect at once."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.audit_trail import AuditDep
from api.auth import Role, guard
from api.deps import EngineDep, SettingsDep, TemporalDep
from api.metrics import WORKFLOW_STARTS
from api.problems import Problem, engine_unavailable, not_found
from api.schemas_publishing import PublishingBody, PublishingPut, PublishingRead, PublishingStatus
from domain.publishing import target_problem
from models import publishing_store as store
from runtime.settings import Settings
from workflows.contracts import PUBLISHER_WORKFLOW, PublisherInput, publisher_workflow_id

router = APIRouter(tags=["publishing"])
_UNAVAILABLE = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED}


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


async def _known_channel(conn: AsyncConnection, code: str) -> None:
    if (await conn.execute(text("SELECT 1 FROM channel WHERE code = :c"), {"c": code})).first() is None:
        raise not_found(f"channel {code}")


async def _target(conn: AsyncConnection, code: str) -> Any:
    await _known_channel(conn, code)
    row = await store.target(conn, code)
    if row is None:
        raise not_found(f"the publishing target of channel {code}")
    return row


async def _poke(temporal: Client, settings: Settings, code: str) -> None:
    """Start the channel's publisher unless it runs (signal-with-start: one call, atomic) and
    poke it. A publisher that finished (terminated, failed) is started again."""
    inp = PublisherInput(
        code,
        settings.publish_fail_after_seconds,
        settings.exception_policy("channel_sync_failed", "retry_now"),
    )
    try:
        await temporal.start_workflow(
            PUBLISHER_WORKFLOW,
            inp,
            id=publisher_workflow_id(code),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal="poke",
            rpc_timeout=timedelta(seconds=10),
        )
    except RPCError as exc:
        WORKFLOW_STARTS.labels(PUBLISHER_WORKFLOW, "unavailable").inc()
        if exc.status in _UNAVAILABLE:
            raise engine_unavailable() from exc
        raise
    WORKFLOW_STARTS.labels(PUBLISHER_WORKFLOW, "started").inc()


@router.put("/v1/channels/{code}/publishing", response_model=PublishingPut, **guard(Role.admin))
async def put_publishing(
    code: str,
    body: PublishingBody,
    engine: EngineDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    audit: AuditDep,
) -> PublishingPut:
    """Set the channel's webhook target. A new target gets a signing secret, answered only
    here and only now (`rotate_secret` issues a new one); it starts with a full snapshot, as
    does a target switched back on. The publisher starts if it is not running."""
    problem = target_problem(body.url, settings.publish_allowed_hosts)
    if problem is not None:
        raise Problem(
            422, problem, slug="validation-error", errors=[{"loc": ["body", "url"], "msg": problem}]
        )
    config = body.model_dump(include={"url", "enabled", "batch_ms", "max_batch", "rate_per_s"})
    secret: str | None = new_secret()
    async with audit.change(engine, "publishing_target", code, "put") as (conn, change):
        await _known_channel(conn, code)
        change.before = _audited(await store.target(conn, code))
        created = await store.put_target(conn, code, secret or "", **config)
        if not created and body.rotate_secret:
            await store.set_secret(conn, code, secret or "")
        elif not created:
            secret = None
        row = await store.target(conn, code)
        change.after = {**(_audited(row) or {}), "secret_issued": secret is not None}
    await _poke(temporal, settings, code)
    return PublishingPut.model_validate(row).model_copy(update={"secret": secret})


def _audited(row: Any) -> dict[str, Any] | None:
    """The target as the audit trail shows it: never its secret."""
    if row is None:
        return None
    return {k: row._mapping[k] for k in ("url", "enabled", "batch_ms", "max_batch", "rate_per_s")}


@router.get("/v1/channels/{code}/publishing", response_model=PublishingRead, **guard(Role.admin))
async def get_publishing(code: str, engine: EngineDep) -> PublishingRead:
    """The channel's target, without its secret."""
    async with engine.connect() as conn:
        return PublishingRead.model_validate(await _target(conn, code))


@router.post("/v1/channels/{code}/publishing/resync", status_code=202, **guard(Role.admin))
async def resync_publishing(
    code: str, engine: EngineDep, temporal: TemporalDep, settings: SettingsDep, audit: AuditDep
) -> dict[str, str]:
    """Send every SKU's absolute ATP (a snapshot) before the next changes; the publisher is
    poked (and started if it is not running)."""
    async with audit.change(engine, "publishing_target", code, "resync") as (conn, change):
        await _target(conn, code)
        await store.ask_snapshot(conn, code)
        change.after = {"snapshot_due": True}
    await _poke(temporal, settings, code)
    return {"channel": code, "status": "snapshot_due"}


@router.get("/v1/channels/{code}/publishing/status", response_model=PublishingStatus, **guard(Role.readonly))
async def publishing_status(code: str, engine: EngineDep) -> PublishingStatus:
    """How far the channel's feed was delivered, when last, the lag of the last deliveries
    (p50 / p99, ms), and whether it is failing, paused or owes a snapshot."""
    async with engine.connect() as conn:
        t = await _target(conn, code)
        lag = await store.lag_stats(conn, code)
    return PublishingStatus(
        channel=code,
        cursor=f"{t.cursor_txid}.{t.cursor_seq}",
        enabled=t.enabled,
        paused=t.paused,
        snapshot_due=t.snapshot_due,
        failing_since=t.failing_since,
        last_delivery_at=t.last_delivery_at,
        lag_ms_p50=None if lag.p50 is None else float(lag.p50),
        lag_ms_p99=None if lag.p99 is None else float(lag.p99),
    )
