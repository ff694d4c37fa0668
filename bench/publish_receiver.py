"""A channel's webhook receiver on loopback, as the publishing bench and tests use it: it
verifies each delivery's signature (the channel's secret), deduplicates by delivery id,
applies a delta's item only when its `previous` is what it holds (compare-and-set; a
snapshot always applies), and keeps every delivery it applied with the time it got it. It can
be told to answer 500, or to hold deliveries past the sender's timeout (then apply them late:
an answer that comes after newer ones).

One receiver serves every channel at `{url}/{channel}`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from domain.publishing import DELIVERY_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Applied:
    """One item the receiver took: what it held before, what it holds now, from which delivery."""

    delivery_id: str
    kind: str
    sku: str
    available: int
    previous: int | None  # the delivery's `previous`
    held_before: int | None  # what the receiver held
    at: float  # time.time() when the delivery came in


@dataclass
class Receiver:
    secrets: dict[str, str] = field(default_factory=dict)  # channel -> signing secret
    fail_next: int = 0  # answer 500 to this many deliveries
    stall_next: int = 0  # hold this many deliveries for stall_seconds, then apply them
    stall_seconds: float = 15.0
    stalling: int = 0  # deliveries held so far
    url: str = ""  # the base: a channel posts to f"{url}/{channel}"
    held: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, sku) -> ATP
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # applied, in arrival order
    arrived: dict[str, float] = field(default_factory=dict)  # delivery id -> when applied
    applied: dict[tuple[str, str], list[Applied]] = field(default_factory=lambda: defaultdict(list))
    seen: set[str] = field(default_factory=set)
    attempts: list[str] = field(default_factory=list)  # every delivery id posted, answered or not
    bad_signatures: int = 0
    duplicates: int = 0  # deliveries whose id was seen before (not applied again)
    stale: int = 0  # items refused by compare-and-set (their `previous` is not what we hold)

    async def handle(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        body = await request.body()
        now = time.time()
        signed = request.headers.get(SIGNATURE_HEADER, "")
        if not verify(self.secrets.get(channel, ""), signed, body, int(now)):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.attempts.append(request.headers.get(DELIVERY_HEADER, ""))
        if self.stall_next > 0:
            self.stall_next -= 1
            self.stalling += 1
            await asyncio.sleep(self.stall_seconds)
        elif self.fail_next > 0:
            self.fail_next -= 1
            return Response(status_code=500)
        self.apply(channel, json.loads(body), request.headers.get(DELIVERY_HEADER), now)
        return Response(status_code=204)

    def apply(self, channel: str, delivery: dict[str, Any], header_id: str | None, now: float) -> None:
        assert delivery["delivery_id"] == header_id and delivery["channel"] == channel
        if delivery["delivery_id"] in self.seen:  # at least once: deduplicate by id
            self.duplicates += 1
            return
        self.seen.add(delivery["delivery_id"])
        self.deliveries.append(delivery)
        self.arrived[delivery["delivery_id"]] = now
        for item in delivery["items"]:
            key = (channel, item["sku"])
            before = self.held.get(key)
            if delivery["kind"] == "snapshot" or item["previous"] == before:
                self.held[key] = item["available"]
                record = Applied(
                    delivery["delivery_id"],
                    delivery["kind"],
                    item["sku"],
                    item["available"],
                    item["previous"],
                    before,
                    now,
                )
                self.applied[key].append(record)
            else:
                self.stale += 1

    def state_of(self, channel: str) -> dict[str, int]:
        return {sku: n for (ch, sku), n in self.held.items() if ch == channel}


async def start_receiver(receiver: Receiver) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    app = Starlette(routes=[Route("/hook/{channel}", receiver.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task


R = TypeVar("R", bound=Receiver)


@asynccontextmanager
async def running(receiver: R) -> AsyncIterator[R]:
    server, task = await start_receiver(receiver)
    try:
        yield receiver
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
