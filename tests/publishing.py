"""The web channel's webhook receiver on loopback for publishing tests (the bench's, which
verifies signatures, deduplicates, applies by compare-and-set and can fail or stall), and
waits that let the workflow's timers run in skipped time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench.publish_receiver import Receiver as SharedReceiver
from bench.publish_receiver import running
from models import publishing_store as store
from runtime.settings import Settings
from workflows.contracts import ExceptionPolicyInput, PublisherInput, publisher_workflow_id


class Receiver(SharedReceiver):
    """The receiver of the `web` channel (bench/publish_receiver.py): `url` is its hook,
    `secret` its secret, `state` what it holds."""

    CHANNEL = "web"

    def __init__(self, secret: str) -> None:
        super().__init__(secrets={self.CHANNEL: secret})

    @property
    def secret(self) -> str:
        return self.secrets[self.CHANNEL]

    @secret.setter
    def secret(self, value: str) -> None:
        self.secrets[self.CHANNEL] = value

    @property
    def hook(self) -> str:
        return f"{self.url}/{self.CHANNEL}"

    @property
    def state(self) -> dict[str, int]:
        return self.state_of(self.CHANNEL)


@asynccontextmanager
async def running_receiver(secret: str) -> AsyncIterator[Receiver]:
    async with running(Receiver(secret)) as receiver:
        yield receiver


async def start_publisher(
    client: Client, engine: AsyncEngine, settings: Settings, receiver: Receiver, **over: object
) -> str:
    """The web channel's target set to `receiver` (no batch window, 100 deliveries/s) and its
    publisher started; returns the workflow id."""
    config = {
        "url": receiver.hook,
        "enabled": True,
        "batch_ms": 0,
        "max_batch": 500,
        "rate_per_s": 100.0,
        **over,
    }
    async with engine.begin() as conn:
        await store.put_target(conn, "web", receiver.secret, **config)
    policy = ExceptionPolicyInput(sla_seconds=3600, max_escalations=1, default_action="retry_now")
    wid = publisher_workflow_id("web")
    await client.start_workflow(
        "ChannelPublisher",
        PublisherInput("web", 120, policy, rounds_before_new=40, idle_wait_seconds=0.5),
        id=wid,
        task_queue=settings.task_queue,
    )
    return wid


async def until(
    env: WorkflowEnvironment, ok: Callable[[], bool], timeout: float = 20.0, step: float = 0.2
) -> None:
    """Wait for `ok`, letting the workflow's timers (windows, pacing) run in skipped time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not ok():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the receiver never got there")
        await env.sleep(step)
        await asyncio.sleep(0.02)


async def status_when(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    ok: Callable[[dict[str, Any]], bool],
    channel: str = "web",
) -> dict[str, Any]:
    """The channel's publishing status once `ok` holds (the cursor moves just after the
    receiver's 2xx, so a test that saw the receiver's state waits a moment for it)."""
    status: dict[str, Any] = {}
    for _ in range(100):
        status = (await api.get(f"/v1/channels/{channel}/publishing/status", headers=headers)).json()
        if ok(status):
            break
        await asyncio.sleep(0.05)
    return status


async def availability(
    api: httpx.AsyncClient, headers: dict[str, str], channel: str = "web"
) -> list[dict[str, Any]]:
    """GET /v1/availability of the channel: every SKU's ATP (what a receiver must end with)."""
    r = await api.get("/v1/availability", params={"channel": channel}, headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items
