"""The channel publishing API over ASGI: roles, unknown channels, SSRF refusals, the secret
answered once, the status, and a resync delivering a snapshot to a receiver on loopback
through the real worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.publishing import signature, verify
from models import publishing_store as store
from runtime.settings import Settings
from tests.factories import receive
from tests.publishing import running_receiver, status_when, until
from workflows.contracts import publisher_workflow_id

Headers = dict[str, str]
LOOPBACK = "http://127.0.0.1:9/hook"


async def put(api: httpx.AsyncClient, headers: Headers, url: str = LOOPBACK, **body: Any) -> httpx.Response:
    return await api.put("/v1/channels/web/publishing", json={"url": url, **body}, headers=headers)


async def test_roles_unknown_channels_and_bounds(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    assert (await put(api, {})).status_code == 401
    for role in ("warehouse", "readonly", "web", "finance"):
        assert (await put(api, keys[role])).status_code == 403, role
    r = await api.put("/v1/channels/NOPE/publishing", json={"url": LOOPBACK}, headers=keys["admin"])
    assert r.status_code == 404
    assert (await api.get("/v1/channels/web/publishing", headers=keys["admin"])).status_code == 404
    assert (await api.post("/v1/channels/web/publishing/resync", headers=keys["admin"])).status_code == 404
    bads: list[dict[str, Any]] = [
        {"batch_ms": 60_001},
        {"max_batch": 0},
        {"rate_per_s": 0},
        {"rate_per_s": 1001},
        {"x": 1},
    ]
    for bad in bads:
        assert (await put(api, keys["admin"], **bad)).status_code == 422, bad
    assert (await put(api, keys["admin"])).status_code == 200
    assert (await api.get("/v1/channels/web/publishing", headers=keys["readonly"])).status_code == 403
    status = await api.get("/v1/channels/web/publishing/status", headers=keys["readonly"])
    assert status.status_code == 200
    assert (await api.get("/v1/channels/web/publishing/status", headers=keys["web"])).status_code == 403
    assert (
        await api.post("/v1/channels/web/publishing/resync", headers=keys["warehouse"])
    ).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "http://user:pw@127.0.0.1/",
        "http://example.com/hook",
        "gopher://127.0.0.1/",
        "http://10.0.0.1/",
        "http://[::1/",
        "http://127.0.0.1:99999/",
    ],
)
async def test_targets_we_must_not_call_are_refused_naming_the_url(
    api: httpx.AsyncClient, keys: dict[str, Headers], url: str
) -> None:
    r = await put(api, keys["admin"], url)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["loc"] == ["body", "url"]


async def test_an_allowed_host_may_be_named(
    api: httpx.AsyncClient, keys: dict[str, Headers], settings: Settings
) -> None:
    settings.publish_allowed_hosts = ["example.com"]
    assert (await put(api, keys["admin"], "https://example.com/hook")).status_code == 200
    assert (await put(api, keys["admin"], "https://evil.example.com/hook")).status_code == 422


async def test_the_secret_is_answered_once_and_the_publisher_runs(
    api: httpx.AsyncClient, keys: dict[str, Headers], temporal_client: Client
) -> None:
    first = await put(api, keys["admin"], batch_ms=50)
    assert first.status_code == 200, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    again = await put(api, keys["admin"], enabled=False)
    assert again.json()["secret"] is None and again.json()["enabled"] is False
    read = (await api.get("/v1/channels/web/publishing", headers=keys["admin"])).json()
    assert "secret" not in read and read["batch_ms"] == 200 and read["url"] == LOOPBACK
    rotated = (await put(api, keys["admin"], rotate_secret=True)).json()["secret"]
    assert rotated and rotated != secret
    desc = await temporal_client.get_workflow_handle(publisher_workflow_id("web")).describe()
    assert desc.status is not None and desc.status.name == "RUNNING"


async def test_status_then_a_resync_delivers_a_snapshot_to_the_receiver(
    api: httpx.AsyncClient,
    keys: dict[str, Headers],
    engine: AsyncEngine,
    worker: Worker,
    temporal_env: WorkflowEnvironment,
) -> None:
    await receive(engine, "TEE", "DC-EAST", 5)
    async with running_receiver("unknown yet") as receiver:
        r = await put(api, keys["admin"], receiver.hook, batch_ms=0, rate_per_s=100)
        receiver.secret = r.json()["secret"]
        async with engine.connect() as conn:
            truth = await store.current_atp(conn, "web")
        await until(temporal_env, lambda: receiver.state == truth)
        assert [d["kind"] for d in receiver.deliveries] == ["snapshot"] and receiver.bad_signatures == 0
        await receive(engine, "MUG", "DC-WEST", 4)
        await until(temporal_env, lambda: receiver.state.get("MUG") == 4)
        status = await status_when(api, keys["readonly"], lambda s: s["lag_ms_p50"] is not None)
        assert status["enabled"] and not status["paused"] and not status["snapshot_due"]
        assert status["failing_since"] is None and status["last_delivery_at"] is not None
        assert status["cursor"] != "0.0" and status["lag_ms_p50"] is not None and status["lag_ms_p99"] >= 0
        resync = await api.post("/v1/channels/web/publishing/resync", headers=keys["admin"])
        assert resync.status_code == 202
        await until(temporal_env, lambda: len(receiver.deliveries) == 3)
        last = receiver.deliveries[-1]
        assert last["kind"] == "snapshot" and {i["sku"]: i["available"] for i in last["items"]} == {
            **truth,
            "MUG": 4,
        }
        status = await status_when(api, keys["admin"], lambda s: not s["snapshot_due"])
        assert not status["snapshot_due"] and status["failing_since"] is None


def test_the_readmes_receiver_snippet_verifies_as_the_sender_signs() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = readme.split("## Channel publishing")[1].split("```python\n")[1].split("```")[0]
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # our own README
    body, now = b'{"items": []}', int(time.time())
    header = signature("whsec_x", now, body)
    assert scope["verify"]("whsec_x", header, body) and verify("whsec_x", header, body, now)
    assert not scope["verify"]("whsec_y", header, body) and not scope["verify"](
        "whsec_x", header, body + b" "
    )
    assert not scope["verify"]("whsec_x", signature("whsec_x", now - 3600, body), body)
