from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from runtime.ports import free_port
from runtime.settings import Settings


async def test_healthz_and_readyz(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    r = await api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "workflow_engine": "ok"}


async def _client_for(
    settings: Settings, temporal: Client | None = None
) -> AsyncGenerator[httpx.AsyncClient, None]:
    app = create_app(settings, configure_logs=False, temporal_client=temporal)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        yield c


@pytest.mark.parametrize("down", ["database", "workflow_engine"])
async def test_readyz_is_503_when_a_dependency_is_down(
    down: str, settings: Settings, temporal_client: Client
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    if down == "database":
        s = settings.model_copy(update={"database_url": f"postgresql://postgres@{dead}/x"})
        gen = _client_for(s, temporal_client)
    else:
        s = settings.model_copy(update={"temporal_address": dead})
        gen = _client_for(s)
    client = await anext(gen)
    try:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.headers["retry-after"]
        checks = r.json()["checks"]
        assert checks[down].startswith("unavailable")
        other = "workflow_engine" if down == "database" else "database"
        assert checks[other] == "ok"
    finally:
        await gen.aclose()


async def test_metrics_count_requests_by_route_template_and_status(admin: httpx.AsyncClient) -> None:
    await admin.get("/v1/api-keys")
    await admin.delete("/v1/api-keys/key_missing")
    text = (await admin.get("/metrics")).text
    assert 'omniflow_http_requests_total{method="GET",route="/v1/api-keys",status="200"}' in text
    assert 'omniflow_http_requests_total{method="DELETE",route="/v1/api-keys/{key_id}",status="404"}' in text
    assert "omniflow_http_request_duration_seconds_bucket" in text
