from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.auth import PUBLIC, guard
from api.deps import EngineDep, TemporalDep

router = APIRouter(tags=["operations"])

_CHECK_TIMEOUT = 2.0


@router.get("/healthz", **guard(PUBLIC))
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", **guard(PUBLIC), responses={503: {"description": "a dependency is unreachable"}})
async def readyz(engine: EngineDep, temporal: TemporalDep) -> Response:
    """Postgres and the workflow engine both answer."""

    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def workflow_engine() -> None:
        # GetSystemInfo is what every server (and the test server) answers first.
        await temporal.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=2))

    checks: dict[str, str] = {}
    for name, probe in (("database", database), ("workflow_engine", workflow_engine)):
        try:
            await asyncio.wait_for(probe(), _CHECK_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"[:200]
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "2"},
    )


@router.get("/metrics", **guard(PUBLIC), response_class=Response)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
