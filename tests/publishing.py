"""A channel's webhook receiver on loopback for publishing tests: it verifies each
delivery's signature, keeps every delivery and the state it builds (SKU -> ATP), and can be
told to fail, stall or answer its deliveries out of order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from domain.publishing import DELIVERY_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Receiver:
    secret: str
    fail_next: int = 0  # answer 500 to this many deliveries
    stall_next: int = 0  # hold this many deliveries past the sender's timeout, then apply them
    stall_seconds: float = 15.0
    stalling: int = 0  # deliveries held so far
    duplicates: int = 0  # deliveries whose id was seen before (not applied again)
    stale: int = 0  # items refused by compare-and-set (their `previous` is not what we hold)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    bad_signatures: int = 0
    url: str = ""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if not verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body, int(time.time())):
            self.bad_signatures += 1
            return Response(status_code=401)
        if self.stall_next > 0:
            self.stall_next -= 1
            self.stalling += 1
            await asyncio.sleep(self.stall_seconds)
        elif self.fail_next > 0:
            self.fail_next -= 1
            return Response(status_code=500)
        delivery = json.loads(body)
        assert delivery["delivery_id"] == request.headers[DELIVERY_HEADER]
        if delivery["delivery_id"] in self.seen:  # at least once: deduplicate by id
            self.duplicates += 1
            return Response(status_code=204)
        self.seen.add(delivery["delivery_id"])
        self.deliveries.append(delivery)
        for item in delivery["items"]:
            # compare-and-set: a delta applies only over the value it was computed from
            if delivery["kind"] == "snapshot" or item["previous"] == self.state.get(item["sku"]):
                self.state[item["sku"]] = item["available"]
            else:
                self.stale += 1
        return Response(status_code=204)


async def start_receiver(secret: str) -> tuple[Receiver, uvicorn.Server, asyncio.Task[None]]:
    receiver = Receiver(secret)
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return receiver, server, task


@asynccontextmanager
async def running_receiver(secret: str) -> AsyncIterator[Receiver]:
    receiver, server, task = await start_receiver(secret)
    try:
        yield receiver
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
