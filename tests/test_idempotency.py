"""The Idempotency-Key mechanism (docs/api.md, "Idempotency-Key"), on routes registered for
the test with the same `guard(..., idempotency=...)` declaration real routes use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import Field

from api.auth import guard
from api.problems import Problem
from api.schemas import RequestModel
from tests.factories import DatabaseOutage


class Thing(RequestModel):
    name: str
    qty: int = Field(ge=0)


@pytest.fixture
def counter(admin: httpx.AsyncClient) -> dict[str, Any]:
    app: FastAPI = admin.app  # type: ignore[attr-defined]
    state: dict[str, Any] = {"calls": 0, "gate": None, "fail": 0, "database_goes_down": None}

    @app.post("/v1/_test/things", status_code=201, **guard("any", idempotency="required"))
    async def create_thing(body: Thing) -> dict[str, Any]:
        state["calls"] += 1
        if state["gate"] is not None:
            await state["gate"].wait()
        if state.get("database_goes_down") is not None:
            await state.pop("database_goes_down")()
        if state["fail"]:
            state["fail"] -= 1
            raise Problem(503, "try again", slug="engine-unavailable")
        if body.name == "conflict":
            raise Problem(409, "already done", slug="conflict")
        return {"id": f"thing-{state['calls']}", "name": body.name}

    @app.post("/v1/_test/optional", **guard("any", idempotency="optional"))
    async def optional(body: Thing) -> dict[str, Any]:
        state["calls"] += 1
        return {"n": state["calls"]}

    return state


async def test_same_key_same_body_replays_the_first_response(
    admin: httpx.AsyncClient, counter: dict[str, Any]
) -> None:
    h = {"Idempotency-Key": "k-1"}
    first = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # Same JSON, other key order and spacing: still the same request.
    again = await admin.post(
        "/v1/_test/things",
        content=b'{ "qty": 1,  "name": "a" }',
        headers={**h, "content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert counter["calls"] == 1


async def test_same_key_different_body_is_422(admin: httpx.AsyncClient, counter: dict[str, Any]) -> None:
    h = {"Idempotency-Key": "k-2"}
    assert (await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)).status_code == 201
    r = await admin.post("/v1/_test/things", json={"name": "a", "qty": 2}, headers=h)
    assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-key-reused"
    assert counter["calls"] == 1


async def test_same_key_while_in_flight_is_409(admin: httpx.AsyncClient, counter: dict[str, Any]) -> None:
    counter["gate"] = asyncio.Event()
    h = {"Idempotency-Key": "k-3"}
    first = asyncio.create_task(admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h))
    while counter["calls"] == 0:
        await asyncio.sleep(0.01)
    second = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)
    assert second.status_code == 409 and second.headers["retry-after"] == "1"
    counter["gate"].set()
    assert (await first).status_code == 201
    third = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)
    assert third.headers["idempotent-replayed"] == "true"
    assert counter["calls"] == 1


async def test_racing_duplicates_execute_once(admin: httpx.AsyncClient, counter: dict[str, Any]) -> None:
    h = {"Idempotency-Key": "k-race"}
    results = await asyncio.gather(
        *(admin.post("/v1/_test/things", json={"name": "r", "qty": 1}, headers=h) for _ in range(10))
    )
    codes = sorted(r.status_code for r in results)
    assert counter["calls"] == 1
    assert set(codes) <= {201, 409} and codes.count(201) >= 1


async def test_missing_key_on_a_required_route_is_400(
    admin: httpx.AsyncClient, counter: dict[str, Any]
) -> None:
    r = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1})
    assert r.status_code == 400 and r.json()["type"] == "/problems/idempotency-key-required"
    assert counter["calls"] == 0
    # Optional routes run without one, each time.
    await admin.post("/v1/_test/optional", json={"name": "a", "qty": 1})
    await admin.post("/v1/_test/optional", json={"name": "a", "qty": 1})
    assert counter["calls"] == 2


async def test_server_errors_free_the_key_for_a_retry(
    admin: httpx.AsyncClient, counter: dict[str, Any]
) -> None:
    counter["fail"] = 1
    h = {"Idempotency-Key": "k-5"}
    assert (await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)).status_code == 503
    retry = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert counter["calls"] == 2


async def test_client_errors_are_replayed_too(admin: httpx.AsyncClient, counter: dict[str, Any]) -> None:
    h = {"Idempotency-Key": "k-6"}
    first = await admin.post("/v1/_test/things", json={"name": "conflict", "qty": 1}, headers=h)
    again = await admin.post("/v1/_test/things", json={"name": "conflict", "qty": 1}, headers=h)
    assert first.status_code == again.status_code == 409
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"].startswith("application/problem+json")
    assert counter["calls"] == 1


async def test_keys_are_scoped_per_caller(
    admin: httpx.AsyncClient, counter: dict[str, Any], make_key: Callable[..., str]
) -> None:
    other = {"Authorization": f"Bearer {make_key('warehouse')}", "Idempotency-Key": "shared"}
    a = await admin.post(
        "/v1/_test/things", json={"name": "a", "qty": 1}, headers={"Idempotency-Key": "shared"}
    )
    b = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=other)
    assert a.json()["id"] != b.json()["id"]
    assert counter["calls"] == 2


async def test_unauthenticated_requests_are_not_remembered(
    api: httpx.AsyncClient, counter: dict[str, Any]
) -> None:
    r = await api.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers={"Idempotency-Key": "k-7"})
    assert r.status_code == 401


async def test_invalid_key_is_400(admin: httpx.AsyncClient, counter: dict[str, Any]) -> None:
    r = await admin.post(
        "/v1/_test/things", json={"name": "a", "qty": 1}, headers={"Idempotency-Key": "x" * 256}
    )
    assert r.status_code == 400


async def test_a_key_is_freed_as_soon_as_the_database_is_back(
    admin: httpx.AsyncClient, counter: dict[str, Any], engine: Any
) -> None:
    """The request failed with a 5xx while Postgres was unavailable to the API (its sessions
    cut, new ones refused), so freeing its key failed too: the key is freed once the database
    answers again, and the client's retry runs instead of waiting out
    `idempotency_in_flight_seconds` as "in flight" (409)."""
    outage = DatabaseOutage(engine)

    async def database_goes_down() -> None:
        await outage.cut()

    counter["database_goes_down"], counter["fail"] = database_goes_down, 1
    h = {"Idempotency-Key": "k-db-restart"}
    try:
        first = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)
        assert first.status_code == 503
        await asyncio.sleep(0.5)  # the database stays away a while: freeing the key keeps failing
    finally:
        await outage.restore()
    for _ in range(50):
        retry = await admin.post("/v1/_test/things", json={"name": "a", "qty": 1}, headers=h)
        if retry.status_code != 409:
            break
        await asyncio.sleep(0.1)
    assert retry.status_code == 201, retry.text
    assert counter["calls"] == 2
