"""A body over `max_body_bytes` gets the 413 problem, also from a client that sends it all at
once without `Expect: 100-continue` (Python's urllib): the server reads the body (up to a
bound) before it answers, so the connection is not reset under the client with the answer
unread. Over a real socket, on both HTTP implementations uvicorn runs."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import Client

from runtime.settings import Settings
from tests.live_api import live_api

FIVE_MB = 5 * 1024 * 1024


def _post(url: str, admin_key: str, data: bytes | Iterator[bytes]) -> tuple[int, str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    if not isinstance(data, bytes):
        headers["Transfer-Encoding"] = "chunked"
    request = urllib.request.Request(f"{url}/v1/skus", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers["content-type"], json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers["content-type"], json.loads(e.read())


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_5_mb_body_sent_at_once_gets_the_413_problem(
    settings: Settings, temporal_client: Client, admin_key: str, http: str, framing: str
) -> None:
    assert settings.max_body_bytes < FIVE_MB
    async with live_api(settings, temporal_client, http=http) as url:
        data: bytes | Iterator[bytes] = b" " * FIVE_MB if framing == "content-length" else _chunks(FIVE_MB)
        status, content_type, problem = await asyncio.to_thread(_post, url, admin_key, data)
        assert status == 413
        assert content_type.startswith("application/problem+json")
        assert problem["type"] == "/problems/body-too-large"
        assert problem["status"] == 413
        assert str(settings.max_body_bytes) in problem["detail"]
        # The server is fine afterwards: a small body is answered as usual.
        status, _, problem = await asyncio.to_thread(_post, url, admin_key, b"{}")
        assert status == 422 and problem["type"] == "/problems/validation-error"
