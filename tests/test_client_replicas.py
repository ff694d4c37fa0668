"""The API client given several replicas of the API (`omniflow dev --replicas 2`): requests
take turns, and a retry goes to the next replica, so a replica that died is left at once and
a write is sent again elsewhere with its own Idempotency-Key."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from client import AsyncOmniflowClient, OmniflowClient, RetryPolicy
from client import operations as ops
from client.request import Request, write

REPLICAS = ["http://api-1:8000", "http://api-2:8001/"]
RETRY = RetryPolicy(attempts=3, initial_delay=0.0, max_delay=0.0)


class Replicas:
    """Two replicas behind a mock transport; `dead` ones refuse connections, `mute` ones
    take the request and die before answering."""

    def __init__(self, dead: frozenset[str] = frozenset(), mute: frozenset[str] = frozenset()) -> None:
        self.dead, self.mute = dead, mute
        self.seen: list[tuple[str, str | None]] = []  # (host, Idempotency-Key)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append((host, request.headers.get("idempotency-key")))
        if host in self.dead:
            raise httpx.ConnectError("connection refused", request=request)
        if host in self.mute:
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return httpx.Response(200, json={"status": "ok", "replica": host})


def _note(key: str) -> Request[dict[str, Any]]:
    """A write under a route that takes an Idempotency-Key (the key given by the caller)."""
    return write("POST", "/v1/notes", "/v1/notes", dict, {"n": 1}, key=key, policy="required")


def test_requests_take_turns_over_the_replicas() -> None:
    replicas = Replicas()
    with OmniflowClient(REPLICAS, "k", transport=httpx.MockTransport(replicas)) as api:
        answered = [api.health()["replica"] for _ in range(4)]
    assert answered == ["api-1", "api-2", "api-1", "api-2"]
    assert api.base_urls == ("http://api-1:8000", "http://api-2:8001")


def test_a_dead_replica_is_left_for_the_other_at_once() -> None:
    replicas = Replicas(dead=frozenset({"api-1"}))
    with OmniflowClient(REPLICAS, "k", retry=RETRY, transport=httpx.MockTransport(replicas)) as api:
        answered = [api.health()["replica"] for _ in range(4)]
    assert answered == ["api-2"] * 4
    # Each request that started at the dead one was tried there once, then on the other.
    assert [h for h, _ in replicas.seen] == ["api-1", "api-2", "api-2", "api-1", "api-2", "api-2"]


def test_a_write_whose_replica_died_mid_request_goes_to_the_other_with_its_key() -> None:
    replicas = Replicas(mute=frozenset({"api-1"}))
    with OmniflowClient(REPLICAS, "k", retry=RETRY, transport=httpx.MockTransport(replicas)) as api:
        reply = api.send(_note("note-1"))
    assert reply.value["replica"] == "api-2" and reply.attempts == 2
    assert replicas.seen == [("api-1", "note-1"), ("api-2", "note-1")]


def test_without_a_retry_policy_a_dead_replica_is_an_error() -> None:
    replicas = Replicas(dead=frozenset({"api-1"}))
    with (
        OmniflowClient(REPLICAS, "k", transport=httpx.MockTransport(replicas)) as api,
        pytest.raises(httpx.ConnectError),
    ):
        api.health()


async def test_the_async_client_does_the_same() -> None:
    replicas = Replicas(mute=frozenset({"api-2"}))
    transport = httpx.MockTransport(replicas)
    async with AsyncOmniflowClient(REPLICAS, "k", retry=RETRY, transport=transport) as api:
        first = await api.send(ops.health())
        second = await api.send(_note("note-2"))
    assert first.value["replica"] == "api-1"
    assert second.value["replica"] == "api-1" and second.attempts == 2
    assert replicas.seen == [("api-1", None), ("api-2", "note-2"), ("api-1", "note-2")]
