"""The pick-task long poll waits on Postgres notifications (LISTEN pick_work, one listening
connection per API process), not by re-reading: woken by a new shipment at its location,
silent while nothing changes there, and still answering new work (by re-reading every
second) while the listener is down, until it listens again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.pick_work_wakeups import PickWorkWakeups
from runtime.embedded_pg import EmbeddedPostgres
from tests.orders_api import Headers, create, order_body
from tests.test_orders_api_reads import _add_shipment
from tests.test_orders_api_workflow import statements


def _wakeups(api: httpx.AsyncClient) -> PickWorkWakeups:
    return api.app.state.pick_work_wakeups  # type: ignore[attr-defined]


def _picks(ran: list[str]) -> list[str]:
    """The statements that read the pick work."""
    return [s for s in ran if "FROM shipment s JOIN shipment_line" in s]


async def _until(check: Any, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _orders(api: httpx.AsyncClient, keys: dict[str, Headers], *external_ids: str) -> None:
    for ext in external_ids:
        assert (await create(api, keys["admin"], order_body(ext))).status_code == 202


async def _poll(
    api: httpx.AsyncClient, wh: Headers, tag: str, wait: float, **params: str
) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = await api.get("/v1/pick-tasks", params={"wait": wait, **params}, headers={**wh, "If-None-Match": tag})
    return r, time.monotonic() - t0


async def _add_later(engine: AsyncEngine, order_id: str, location: str, after: float = 0.3) -> str:
    await asyncio.sleep(after)
    async with engine.begin() as conn:
        return await _add_shipment(conn, order_id, 1, location, {"MUG": 1})


def _shipments(r: httpx.Response) -> list[str]:
    return sorted(s["id"] for w in r.json()["items"] for s in w["shipments"])


async def test_a_waiting_poll_is_woken_by_a_new_shipment_and_reads_nothing_until_then(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine
) -> None:
    wh = keys["warehouse"]
    await _orders(api, keys, "W-1", "W-2", "W-3")
    await _until(lambda: _wakeups(api).listening)
    tag = (await api.get("/v1/pick-tasks", params={"location": "DC-EAST"}, headers=wh)).headers["etag"]

    # Nothing changes: no statement at all (it was one every 50 ms while waiting). The tag is
    # the one this process last read here, and nothing was announced since: no read to confirm.
    with statements(api) as seen:
        r, took = await _poll(api, wh, tag, 2, location="DC-EAST")
    assert r.status_code == 304 and r.headers["etag"] == tag and took >= 2
    assert _picks(seen) == []

    # A change at another location wakes nobody waiting on this one.
    with statements(api) as seen:
        (r, took), _ = await asyncio.gather(
            _poll(api, wh, tag, 1.5, location="DC-EAST"), _add_later(engine, "order-web-W-1", "DC-WEST")
        )
    assert r.status_code == 304 and _picks(seen) == []

    # A new shipment here: answered at once (one read, when woken), long before the deadline.
    with statements(api) as seen:
        (r, took), added = await asyncio.gather(
            _poll(api, wh, tag, 10, location="DC-EAST"), _add_later(engine, "order-web-W-2", "DC-EAST")
        )
    assert r.status_code == 200 and took < 5 and r.headers["etag"] != tag
    assert _shipments(r) == [added]
    assert len(_picks(seen)) == 1

    # A tag this process did not read last is read, and answered at once if it differs.
    with statements(api) as seen:
        r, took = await _poll(api, wh, tag, 10, location="DC-EAST")
    assert r.status_code == 200 and took < 5 and _shipments(r) == [added] and len(_picks(seen)) == 1

    # Everywhere: woken by any location.
    tag = (await api.get("/v1/pick-tasks", headers=wh)).headers["etag"]
    (r, took), added = await asyncio.gather(
        _poll(api, wh, tag, 10), _add_later(engine, "order-web-W-3", "DC-WEST")
    )
    assert r.status_code == 200 and took < 5 and added in _shipments(r)

    # Picking it (its line, then its status) is a change too.
    tag = r.headers["etag"]
    (r, took), _ = await asyncio.gather(_poll(api, wh, tag, 10), _pick_later(engine, added))
    assert r.status_code == 200 and took < 5 and added not in _shipments(r)


async def _pick_later(engine: AsyncEngine, shipment_id: str) -> None:
    await asyncio.sleep(0.3)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE shipment_line SET picked = qty WHERE shipment_id = :s"), {"s": shipment_id}
        )
        await conn.execute(text("UPDATE shipment SET status = 'picked' WHERE id = :s"), {"s": shipment_id})


async def test_while_the_listener_is_down_polls_re_read_every_second_until_it_listens_again(
    api: httpx.AsyncClient,
    keys: dict[str, Headers],
    engine: AsyncEngine,
    database_url: str,
    pg_server: EmbeddedPostgres,
) -> None:
    wh = keys["warehouse"]
    await _orders(api, keys, "F-1", "F-2", "F-3")
    wakeups = _wakeups(api)
    await _until(lambda: wakeups.listening)
    tag = (await api.get("/v1/pick-tasks", headers=wh)).headers["etag"]
    async with engine.connect():  # the test's writes below need a connection made beforehand
        pass
    name = database_url.rsplit("/", 1)[1]

    with psycopg.connect(pg_server.admin_url(), autocommit=True) as admin:
        # Killed and kept from reconnecting: no notification reaches this process.
        admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        try:
            killed = wakeups.backend_pid
            admin.execute("SELECT pg_terminate_backend(%s)", (killed,))
            await _until(lambda: not wakeups.listening)
            with statements(api) as seen:
                (r, took), added = await asyncio.gather(
                    _poll(api, wh, tag, 10), _add_later(engine, "order-web-F-1", "DC-EAST", after=1.2)
                )
            assert r.status_code == 200 and took < 5 and _shipments(r) == [added]
            assert 2 <= len(_picks(seen)) <= 5  # the first read, then one a second
            tag = r.headers["etag"]
            r, took = await _poll(api, wh, tag, 1.5)
            assert r.status_code == 304 and took >= 1.5
        finally:
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")

        # It listens again, on a new connection, and notifications wake the polls again.
        await _until(lambda: wakeups.listening)
        assert wakeups.backend_pid not in (None, killed)
        (r, took), added = await asyncio.gather(
            _poll(api, wh, tag, 10), _add_later(engine, "order-web-F-2", "DC-WEST")
        )
        assert r.status_code == 200 and took < 5 and added in _shipments(r)

        # Killed while a poll waits, it reconnects at once; the poll re-reads and still
        # sees the shipment added meanwhile.
        tag = r.headers["etag"]
        killed = wakeups.backend_pid

        async def kill_then_add() -> str:
            await asyncio.sleep(0.3)
            admin.execute("SELECT pg_terminate_backend(%s)", (killed,))
            return await _add_later(engine, "order-web-F-3", "DC-EAST", after=0)

        (r, took), added = await asyncio.gather(_poll(api, wh, tag, 10), kill_then_add())
        assert r.status_code == 200 and took < 5 and added in _shipments(r)
        await _until(lambda: wakeups.listening and wakeups.backend_pid != killed)
