"""The real app behind a real uvicorn on a free loopback port, in the test's event loop: for
what only a socket shows (when the client has its answer, what the server does with a body
it did not read). Wired like the `api` fixture: the test database, the test Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from temporalio.client import Client

from api.app import create_app
from runtime.ports import free_port
from runtime.settings import Settings


@asynccontextmanager
async def live_api(settings: Settings, temporal_client: Client, *, http: str = "auto") -> AsyncIterator[str]:
    """Serve the app; yield its base URL (http://127.0.0.1:<port>)."""
    app = create_app(settings, configure_logs=False, temporal_client=temporal_client)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
