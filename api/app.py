"""The FastAPI application: thin. It authenticates, validates, starts/signals/updates
workflows and reads Postgres; it never runs activity code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from temporalio.client import Client

from api.auth import KeyCache
from api.errors import install_error_handlers
from api.idempotency import IdempotencyMiddleware
from api.intake_refusal import IntakeStockCache
from api.middleware import RequestContextMiddleware
from api.openapi import install as install_openapi
from api.openapi import serve_docs
from api.order_starts import OrderStartSweeper
from api.pick_work_wakeups import PickWorkWakeups
from api.rate_limits import RateLimits
from api.routes import (
    audit,
    availability,
    catalog,
    console,
    cycle_counts,
    exceptions,
    health,
    inventory,
    keys,
    ledger,
    orders,
    publishing,
    purchase_orders,
    replenishment,
    reports,
    returns,
    shipments,
    suppliers,
    transfers,
)
from api.temporal import Updates
from api.update_finisher import UpdateFinisher
from runtime.db import make_async_engine
from runtime.logging import configure_logging, get_logger
from runtime.settings import Settings, get_settings
from runtime.telemetry import API_SERVICE, process_tracing
from runtime.temporal import connect

log = get_logger("omniflow.api")

DESCRIPTION = """\
One HTTP API for channels, warehouses, approvers and finance.

Authenticate with `Authorization: Bearer <api-key>`. Each operation lists the roles
that may call it under `x-roles`. Errors are `application/problem+json` (RFC 9457).
"""


def create_app(
    settings: Settings | None = None, *, configure_logs: bool = True, temporal_client: Client | None = None
) -> FastAPI:
    """Build the app. Tests pass the Temporal client of their test environment."""
    settings = settings or get_settings()
    if configure_logs:
        configure_logging(settings.log_format, settings.log_level)
    if not settings.database_url or not settings.temporal_address:
        raise RuntimeError("the API needs DATABASE_URL and TEMPORAL_ADDRESS (omniflow dev sets both)")
    tracing = process_tracing(API_SERVICE)  # None: traces off

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_async_engine(
            settings.database_url or "", settings.db_pool_size, "omniflow-api"
        )
        if tracing:
            tracing.instrument_engine(app.state.engine)
        app.state.pick_work_wakeups = PickWorkWakeups(settings.database_url or "")
        app.state.pick_work_wakeups.start()
        # Lazy: the API starts and answers /readyz (503) even while Temporal is down.
        app.state.temporal = (
            temporal_client
            if temporal_client is not None
            else await connect(
                settings.temporal_address or "",
                settings.temporal_namespace,
                lazy=True,
                interceptors=tracing.interceptors() if tracing else (),
            )
        )
        app.state.order_starts = OrderStartSweeper(app.state.engine, app.state.temporal, settings)
        app.state.order_starts.start()
        finisher = UpdateFinisher(
            app.state.temporal,
            window_seconds=settings.update_finish_seconds,
            rpc_seconds=settings.rpc_timeout_seconds,
        )
        app.state.updates = Updates(app.state.temporal, settings.rpc_timeout_seconds, finisher)
        log.info("api started", temporal=settings.temporal_address)
        try:
            yield
        finally:
            await asyncio.shield(finisher.stop())
            await asyncio.shield(app.state.order_starts.stop())
            await asyncio.shield(app.state.pick_work_wakeups.stop())
            await asyncio.shield(app.state.engine.dispose())

    app = FastAPI(
        title="omniflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # /docs and /redoc are served from local assets: api.openapi.serve_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
    app.state.intake_stock = IntakeStockCache(
        settings.intake_stock_cache_seconds, settings.intake_pending_seconds
    )
    app.state.rate_limits = RateLimits(settings)
    install_error_handlers(app)
    app.add_middleware(
        IdempotencyMiddleware,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
        in_flight_timeout=timedelta(seconds=settings.idempotency_in_flight_seconds),
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(keys.router)
    for module in (
        catalog,
        inventory,
        availability,
        transfers,
        cycle_counts,
        exceptions,
        ledger,
        orders,
        shipments,
        suppliers,
        replenishment,
        purchase_orders,
        returns,
        publishing,
        reports,
        audit,
    ):
        app.include_router(module.router)
    install_openapi(app)
    serve_docs(app)
    console.serve_console(app)
    if tracing:
        tracing.instrument_app(app)
    return app
