"""A channel's webhook receiver on loopback for publishing tests: it verifies each
delivery's signature, keeps every delivery and the state it builds (SKU -> ATP), and can be
told to fail, stall or answer its deliveries out of order."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from domain.publishing import DELIVERY_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Receiver:
    secret: str
    fail_next: int = 0  # answer 500 to this many deliveries
    stall_next: int = 0  # hold this many deliveries past the sender's timeout
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
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(status_code=500)
        if self.stall_next > 0:
            self.stall_next -= 1
            await asyncio.sleep(15)
        delivery = json.loads(body)
        assert delivery["delivery_id"] == request.headers[DELIVERY_HEADER]
        if delivery["delivery_id"] not in self.seen:  # at least once: deduplicate by id
            self.seen.add(delivery["delivery_id"])
            self.deliveries.append(delivery)
            for item in delivery["items"]:
                self.state[item["sku"]] = item["available"]
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
