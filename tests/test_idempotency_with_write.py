"""The Idempotency-Key taken by the route in its own write transaction (`key_taken_with_the_write`,
`begin_with_key`, as order intake does): the same answers as the middleware's own claim
(tests/test_idempotency.py), and the key's record commits with the route's write, in one
transaction, or not at all."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import guard
from api.idempotency_keys import begin_with_key, key_taken_with_the_write, store_with_write
from api.problems import Problem
from tests.test_idempotency import Thing

PATH = "/v1/_test/written"


@pytest.fixture
def written(admin: httpx.AsyncClient) -> dict[str, Any]:
    app: FastAPI = admin.app  # type: ignore[attr-defined]
    state: dict[str, Any] = {"calls": 0, "gate": None, "xids": []}

    @app.post(PATH, status_code=201, **guard("any", idempotency="required"))
    async def write_thing(request: Request, body: Thing) -> dict[str, Any]:
        if body.name == "early":  # refused before the key is taken
            raise Problem(422, "refused early", slug="validation-error")
        engine: AsyncEngine = request.app.state.engine
        async with begin_with_key(engine, request) as conn:
            state["calls"] += 1  # counted only once the key is ours
            xid = (await conn.execute(text("SELECT pg_current_xact_id()::text"))).scalar_one()
            state["xids"].append(xid)
            if body.name == "conflict":  # refused inside the transaction: the key rolls back too
                raise Problem(409, "already done", slug="conflict")
            if body.name == "down":
                raise Problem(503, "try again", slug="engine-unavailable")
        if state["gate"] is not None:
            await state["gate"].wait()
        return {"id": f"thing-{state['calls']}", "name": body.name}

    key_taken_with_the_write("POST", PATH)
    return state


async def _record(engine: AsyncEngine, key: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT xmin::text AS xmin, state, response_status FROM idempotency_record WHERE key = :k"
                ),
                {"k": key},
            )
        ).first()


async def test_the_key_commits_with_the_write_in_one_transaction(
    admin: httpx.AsyncClient, written: dict[str, Any], engine: AsyncEngine
) -> None:
    written["gate"] = asyncio.Event()  # the route waits here, its transaction committed
    h = {"Idempotency-Key": "w-1"}
    first = asyncio.create_task(admin.post(PATH, json={"name": "a", "qty": 1}, headers=h))
    while written["calls"] == 0:
        await asyncio.sleep(0.01)
    for _ in range(100):
        record = await _record(engine, "w-1")
        if record is not None:
            break
        await asyncio.sleep(0.01)
    # Inserted by the route's own transaction (its xmin), in flight until the answer is stored.
    assert record.state == "in_flight" and [record.xmin] == written["xids"]
    written["gate"].set()
    assert (await first).status_code == 201 and "idempotent-replayed" not in (await first).headers
    again = await admin.post(PATH, json={"qty": 1, "name": "a"}, headers=h)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == (await first).json()
    assert written["calls"] == 1
    record = await _record(engine, "w-1")
    assert record.state == "done" and record.response_status == 201


async def test_same_key_different_body_is_422(admin: httpx.AsyncClient, written: dict[str, Any]) -> None:
    h = {"Idempotency-Key": "w-2"}
    assert (await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)).status_code == 201
    r = await admin.post(PATH, json={"name": "a", "qty": 2}, headers=h)
    assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-key-reused"
    assert written["calls"] == 1


async def test_same_key_while_in_flight_is_409(admin: httpx.AsyncClient, written: dict[str, Any]) -> None:
    written["gate"] = asyncio.Event()
    h = {"Idempotency-Key": "w-3"}
    first = asyncio.create_task(admin.post(PATH, json={"name": "a", "qty": 1}, headers=h))
    while written["calls"] == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the first's transaction has committed (it waits at the gate)
    second = await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)
    assert second.status_code == 409 and second.headers["retry-after"] == "1"
    assert second.json()["detail"].startswith("a request with this Idempotency-Key is still being processed")
    written["gate"].set()
    assert (await first).status_code == 201
    third = await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)
    assert third.headers["idempotent-replayed"] == "true"
    assert written["calls"] == 1


async def test_racing_duplicates_execute_once(admin: httpx.AsyncClient, written: dict[str, Any]) -> None:
    h = {"Idempotency-Key": "w-race"}
    results = await asyncio.gather(
        *(admin.post(PATH, json={"name": "r", "qty": 1}, headers=h) for _ in range(10))
    )
    codes = sorted(r.status_code for r in results)
    assert written["calls"] == 1
    assert set(codes) <= {201, 409} and codes.count(201) >= 1


async def test_a_refusal_inside_the_transaction_is_stored_and_replayed(
    admin: httpx.AsyncClient, written: dict[str, Any], engine: AsyncEngine
) -> None:
    h = {"Idempotency-Key": "w-4"}
    first = await admin.post(PATH, json={"name": "conflict", "qty": 1}, headers=h)
    again = await admin.post(PATH, json={"name": "conflict", "qty": 1}, headers=h)
    assert first.status_code == again.status_code == 409
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert written["calls"] == 1
    record = await _record(engine, "w-4")
    # Not the route's transaction (it rolled back): the middleware's one insert of the answer.
    assert record.state == "done" and record.xmin not in written["xids"]


async def test_a_refusal_before_the_key_is_taken_is_stored_and_replayed(
    admin: httpx.AsyncClient, written: dict[str, Any]
) -> None:
    h = {"Idempotency-Key": "w-5"}
    first = await admin.post(PATH, json={"name": "early", "qty": 1}, headers=h)
    again = await admin.post(PATH, json={"name": "early", "qty": 1}, headers=h)
    assert first.status_code == again.status_code == 422
    assert again.headers["idempotent-replayed"] == "true"
    other = await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    assert written["calls"] == 0


async def test_server_errors_leave_the_key_free(
    admin: httpx.AsyncClient, written: dict[str, Any], engine: AsyncEngine
) -> None:
    h = {"Idempotency-Key": "w-6"}
    assert (await admin.post(PATH, json={"name": "down", "qty": 1}, headers=h)).status_code == 503
    assert await _record(engine, "w-6") is None
    retry = await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert written["calls"] == 2


async def test_an_abandoned_key_is_taken_over_and_the_route_runs_again(
    admin: httpx.AsyncClient, written: dict[str, Any], engine: AsyncEngine
) -> None:
    """A first attempt that died after its transaction (the key left in flight) is taken over
    once `idempotency_in_flight_seconds` have passed, and the route runs."""
    h = {"Idempotency-Key": "w-7"}
    assert (await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)).status_code == 201
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_record SET state = 'in_flight', locked_at = now() - interval '1 day'"
                " WHERE key = 'w-7'"
            )
        )
    retry = await admin.post(PATH, json={"name": "a", "qty": 1}, headers=h)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert written["calls"] == 2
    assert (await _record(engine, "w-7")).state == "done"


STORED = "/v1/_test/stored"


@pytest.fixture
def stored(admin: httpx.AsyncClient) -> dict[str, Any]:
    """A route that also stores its answer in its write transaction (`store_with_write`, as
    order intake does), then does something that may fail after the commit (intake's start)."""
    app: FastAPI = admin.app  # type: ignore[attr-defined]
    state: dict[str, Any] = {"calls": 0, "xids": []}

    @app.post(STORED, status_code=201, **guard("any", idempotency="required"))
    async def store_thing(request: Request, body: Thing) -> JSONResponse:
        engine: AsyncEngine = request.app.state.engine
        async with begin_with_key(engine, request) as conn:
            state["calls"] += 1
            state["xids"].append((await conn.execute(text("SELECT pg_current_xact_id()::text"))).scalar_one())
            answer = JSONResponse(
                {"id": f"thing-{state['calls']}"}, status_code=201, headers={"Location": "/x"}
            )
            await store_with_write(conn, request, answer)
        if body.name == "down-after":
            raise Problem(503, "try again", slug="engine-unavailable")
        return answer

    key_taken_with_the_write("POST", STORED)
    return state


async def test_an_answer_stored_with_the_write_settles_the_key_in_that_one_transaction(
    admin: httpx.AsyncClient, stored: dict[str, Any], engine: AsyncEngine
) -> None:
    h = {"Idempotency-Key": "s-1"}
    first = await admin.post(STORED, json={"name": "a", "qty": 1}, headers=h)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    record = await _record(engine, "s-1")
    # Taken, answered and done by the route's own transaction: no write after it.
    assert (record.state, record.response_status, [record.xmin]) == ("done", 201, stored["xids"])
    again = await admin.post(STORED, json={"qty": 1, "name": "a"}, headers=h)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert (again.json(), again.headers["location"]) == (first.json(), "/x")
    assert stored["calls"] == 1


async def test_a_server_error_after_an_answer_stored_with_the_write_frees_the_key(
    admin: httpx.AsyncClient, stored: dict[str, Any], engine: AsyncEngine
) -> None:
    h = {"Idempotency-Key": "s-2"}
    assert (await admin.post(STORED, json={"name": "down-after", "qty": 1}, headers=h)).status_code == 503
    assert await _record(engine, "s-2") is None
    retry = await admin.post(STORED, json={"name": "down-after", "qty": 1}, headers=h)
    assert retry.status_code == 503 and stored["calls"] == 2  # run again, not the stored 201 replayed
