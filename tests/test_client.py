"""The API client (client/) against the real app over ASGI: typed results, an order created
with an Idempotency-Key and replayed, problems as ApiError with their fields, pages followed
by cursor, a 503 retried with the same key until Postgres is back, and the sync client over
the same app (it runs in a thread; its transport hands each request to the app on the test's
event loop). The sync client also drives the whole stack in tests/test_order_e2e.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from client import (
    Address,
    ApiError,
    AsyncOmniflowClient,
    Attempt,
    Customer,
    NewChannel,
    NewLine,
    NewLocation,
    NewOrder,
    NewPayment,
    NewSku,
    OmniflowClient,
    Order,
    RetryPolicy,
)
from client import operations as ops
from tests.factories import DatabaseOutage

NYC = Address(name="Ada", line1="1 Main St", city="New York", region="NY", postal_code="10001", country="US")


def new_order(external_id: str, *lines: tuple[str, int, int], channel: str = "web") -> NewOrder:
    total = sum(q * p for _, q, p in lines) + 500
    return NewOrder(
        channel=channel,
        external_id=external_id,
        customer=Customer(id=f"c-{external_id}", email="ada@example.com"),
        ship_to=NYC,
        lines=[NewLine(sku=s, qty=q, unit_price=p) for s, q, p in lines],
        shipping_amount=500,
        payment=NewPayment(status="authorized", amount=total, method="card", reference=f"psp-{external_id}"),
    )


@pytest.fixture
async def admin_api(api: httpx.AsyncClient, admin_key: str) -> AsyncIterator[AsyncOmniflowClient]:
    """An admin client on the test app, with a small catalog."""
    async with AsyncOmniflowClient(http=api, api_key=admin_key) as client:
        for sku in (NewSku(code="TEE", name="Tee", price=2500), NewSku(code="MUG", name="Mug", price=1600)):
            await client.create_sku(sku)
        await client.create_location(NewLocation(code="DC-EAST", name="East", type="dc", lat=40.7, lon=-74.2))
        await client.create_channel(NewChannel(code="web", type="web", locations=["DC-EAST"]))
        yield client


@pytest.fixture
async def web(admin_api: AsyncOmniflowClient) -> AsyncOmniflowClient:
    """The `web` channel's client: the same connections, its own key."""
    key = await admin_api.create_api_key("channel", channel="web", name="storefront")
    assert key.channel == "web" and key.key.startswith("omf_")
    return admin_api.with_options(api_key=key.key)


async def test_an_order_is_created_once_and_its_key_replayed(web: AsyncOmniflowClient) -> None:
    first = await web.send(ops.create_order(new_order("1001", ("TEE", 2, 2500)), idempotency_key="k-1"))
    order = first.value
    assert isinstance(order, Order) and (first.status, first.replayed) == (202, False)
    assert (order.id, order.status, order.amounts.total) == ("order-web-1001", "received", 5500)
    assert order.ship_to.postal_code == "10001" and order.line("TEE").qty == 2

    again = await web.send(ops.create_order(new_order("1001", ("TEE", 2, 2500)), idempotency_key="k-1"))
    assert (again.status, again.replayed, again.value.id) == (202, True, order.id)  # the stored answer

    other_key = await web.send(ops.create_order(new_order("1001", ("TEE", 2, 2500))))
    assert (other_key.status, other_key.replayed, other_key.value.id) == (200, False, order.id)
    assert other_key.idempotency_key not in (None, "k-1")  # generated for that write
    assert [o.id async for o in web.iter_orders()] == [order.id]
    assert (await web.get_order(order.id)).customer.email == "ada@example.com"


async def test_a_problem_is_an_api_error_with_its_fields(web: AsyncOmniflowClient) -> None:
    with pytest.raises(ApiError) as unknown:
        await web.create_order(new_order("1002", ("NOPE", 1, 100)))
    e = unknown.value
    assert (e.status, e.slug, e.title) == (422, "validation-error", "Unprocessable Entity")
    assert e.errors[0]["loc"] == ["body", "lines", 0, "sku"] and "NOPE" in e.detail
    assert (e.method, e.path) == ("POST", "/v1/orders")

    with pytest.raises(ApiError) as missing:
        await web.get_order("order-web-none")
    assert (missing.value.status, missing.value.slug, missing.value.title) == (404, "not-found", "Not Found")

    await web.create_order(new_order("1003", ("TEE", 1, 2500)))
    with pytest.raises(ApiError) as conflict:  # the same order number with other data
        await web.create_order(new_order("1003", ("TEE", 5, 2500)))
    assert (conflict.value.status, conflict.value.slug) == (409, "conflict")
    assert conflict.value.extra["order_id"] == "order-web-1003"

    await web.create_order(new_order("1004", ("MUG", 1, 1600)), idempotency_key="k-reused")
    with pytest.raises(ApiError) as reused:  # one key, two different writes
        await web.create_order(new_order("1005", ("MUG", 1, 1600)), idempotency_key="k-reused")
    assert (reused.value.status, reused.value.slug) == (422, "idempotency-key-reused")
    assert reused.value.retry_after is None and "different request" in str(reused.value)


async def test_lists_are_paged_with_the_cursor(admin_api: AsyncOmniflowClient) -> None:
    for n in range(5):
        await admin_api.create_sku(NewSku(code=f"S-{n}", name=f"SKU {n}"))
    first = await admin_api.list_skus(limit=2)
    assert len(first.items) == 2 and first.next_cursor
    second = await admin_api.list_skus(limit=2, cursor=first.next_cursor)
    assert {s.code for s in first.items}.isdisjoint(s.code for s in second.items)
    everything = (await admin_api.list_skus(limit=500)).items
    assert len(everything) == 7 and (await admin_api.list_skus(limit=500)).next_cursor is None
    paged = [s.code async for s in admin_api.iter_skus(limit=2)]  # four pages
    assert paged == [s.code for s in everything]
    assert (await admin_api.ready()).ready and (await admin_api.health())["status"] == "ok"


async def test_a_503_is_retried_with_the_same_key_until_postgres_is_back(
    web: AsyncOmniflowClient, engine: AsyncEngine
) -> None:
    """The API's sessions are cut and new ones refused for a second: the create answers 503
    `database-unavailable` (Retry-After); the client waits and sends the same write again,
    with the same Idempotency-Key, until it is taken; one order."""
    attempts: list[Attempt] = []
    outage = DatabaseOutage(engine)
    retrying = web.with_options(
        retry=RetryPolicy(attempts=None, timeout=30.0, max_delay=0.3), observer=attempts.append
    )
    await outage.cut()
    try:
        create = asyncio.create_task(retrying.send(ops.create_order(new_order("2001", ("TEE", 1, 2500)))))
        for _ in range(100):  # until the client has been refused at least twice
            if sum(a.status == 503 for a in attempts) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await outage.restore()
    reply = await asyncio.wait_for(create, 30)
    assert reply.status == 202 and reply.value.id == "order-web-2001"
    assert reply.attempts == len(attempts) >= 3
    assert {a.outcome for a in attempts[:-1]} <= {"503", "409"} and attempts[-1].outcome == "202"
    assert {a.response.request.headers["idempotency-key"] for a in attempts if a.response} == {
        reply.idempotency_key
    }
    assert [o.id async for o in web.iter_orders()] == ["order-web-2001"]


# -- the sync client -------------------------------------------------------------------------


class _OnTheLoop(httpx.BaseTransport):
    """A blocking transport for a client running in another thread: each request goes to the
    ASGI app on `loop` (where the app's engine and Temporal client live) and back."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.read()
            )
            answer = await self.asgi.handle_async_request(inner)
            content = await answer.aread()
            return httpx.Response(answer.status_code, headers=answer.headers, content=content)

        return asyncio.run_coroutine_threadsafe(send(), self.loop).result(30)


async def test_the_sync_client_does_the_same(
    api: httpx.AsyncClient, web: AsyncOmniflowClient, make_key: Callable[..., str]
) -> None:
    transport = _OnTheLoop(api.app, asyncio.get_running_loop())  # type: ignore[attr-defined]
    key = make_key("channel", channel="web")

    def storefront() -> tuple[Order, bool, list[str], ApiError]:
        with OmniflowClient("http://testserver", key, transport=transport) as sync:
            order = sync.create_order(new_order("3001", ("MUG", 2, 1600)), idempotency_key="s-1")
            replay = sync.send(ops.create_order(new_order("3001", ("MUG", 2, 1600)), idempotency_key="s-1"))
            sync.create_order(new_order("3002", ("TEE", 1, 2500)))
            ids = [o.id for o in sync.iter_orders(limit=1)]
            try:
                sync.cancel_order("order-web-none", "customer asked")
            except ApiError as exc:
                return order, replay.replayed and replay.value == order, ids, exc
            raise AssertionError("no 404")

    order, replayed, ids, missing = await asyncio.to_thread(storefront)
    assert order.id == "order-web-3001" and order.line("MUG").qty == 2 and replayed
    assert ids == ["order-web-3001", "order-web-3002"]
    assert (missing.status, missing.slug) == (404, "not-found")
    assert (await web.get_order("order-web-3002")).status == "received"
