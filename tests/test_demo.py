"""The demo data loads through the public API, once: a second load changes nothing."""

from __future__ import annotations

import asyncio
import io

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import create_app
from runtime.demo import load_demo
from runtime.ports import free_port
from runtime.settings import Settings
from tests.factories import assert_inventory_clean


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar() or 0)
                for t in ("location", "sku", "channel", "supplier", "stock_move", "journal_entry", "exception")}  # fmt: skip


async def test_demo_loads_once(
    settings: Settings, temporal_client: Client, worker: Worker, engine: AsyncEngine, admin_key: str
) -> None:
    app = create_app(settings, configure_logs=False, temporal_client=temporal_client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    loop = asyncio.get_running_loop()
    task = loop.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        out = io.StringIO()
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(load_demo, url, admin_key, out)
        first = await _counts(engine)
        await asyncio.to_thread(load_demo, url, admin_key, out)
        assert await _counts(engine) == first
        assert first["sku"] == 7
        assert first["channel"] == 3
        assert first["exception"] == 1  # the short transfer waits for a person
        assert "demo: 4 locations" in out.getvalue()
        await assert_inventory_clean(engine)
    finally:
        server.should_exit = True
        await task
