"""An HTTP request through httpx (our API client, the webhook publisher, the load generator)
tries no import. httpcore imports `sniffio` inside every lock and event it sets up; since
anyio 4.11 stopped depending on it, nothing installed it, and Python does not remember a
failed import: each request searched the whole path for it, 6 % of the order benchmark's load
generator (encode/httpcore#1103). The project depends on `sniffio` for that reason."""

from __future__ import annotations

import asyncio
import builtins
import importlib.util
import sys
from collections import Counter
from typing import Any

import httpx

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    writer.close()


async def test_a_request_tries_no_import() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    missing: Counter[str] = Counter()
    original = builtins.__import__

    def counting(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        package = (globals or {}).get("__package__") or ""
        absolute = importlib.util.resolve_name("." * level + name, package) if level else name
        if absolute not in sys.modules:
            missing[absolute] += 1
        return original(name, globals, locals, fromlist, level)

    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).text == "ok"  # the first request may import lazily
            builtins.__import__ = counting
            for _ in range(20):
                assert (await http.get(url)).text == "ok"
    finally:
        builtins.__import__ = original
        server.close()
        await server.wait_closed()
    assert not missing, f"imports tried on every request: {dict(missing)}"
