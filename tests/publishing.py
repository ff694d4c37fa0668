"""The web channel's webhook receiver on loopback for publishing tests (the bench's, which
verifies signatures, deduplicates, applies by compare-and-set and can fail or stall), and
waits that let the workflow's timers run in skipped time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from bench.publish_receiver import Receiver as SharedReceiver
from bench.publish_receiver import running


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
