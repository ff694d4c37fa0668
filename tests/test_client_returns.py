"""The returns operations of the client (client/operations_returns.py) against the real app
over ASGI, the order shipped first by the real worker: the reasons listed and one changed;
a return created (202, then 200 for the same number and body, the Idempotency-Key sent
without asking), read, listed and paged; a refusal as an ApiError naming the line and the
rule; a step on an unknown return; store credit; and the sync client over the same app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from client import (
    ApiError,
    AsyncOmniflowClient,
    NewReturn,
    NewReturnLine,
    OmniflowClient,
    Return,
    ReturnedLine,
    ReturnReason,
)
from client import operations_returns as rma
from tests.orders_api import Headers
from tests.test_client import _OnTheLoop
from tests.test_returns_api import ORDER, shipped

__all__ = ["shipped"]  # the fixture: order-web-R-1 shipped in full


@pytest.fixture
async def web(api: httpx.AsyncClient, shipped: dict[str, Headers]) -> AsyncIterator[AsyncOmniflowClient]:
    key = shipped["web"]["Authorization"].removeprefix("Bearer ")
    async with AsyncOmniflowClient(http=api, api_key=key) as client:
        yield client


def new_return(number: str | None, sku: str, qty: int, reason: str = "defective") -> NewReturn:
    return NewReturn(number=number, order=ORDER, lines=[NewReturnLine(sku=sku, qty=qty, reason=reason)])


async def test_the_client_asks_for_returns_and_reads_them(
    web: AsyncOmniflowClient, shipped: dict[str, Headers], make_key: Callable[..., str]
) -> None:
    admin = web.with_options(api_key=make_key("admin"))
    reasons = {r.code: r for r in await web.list_return_reasons()}
    assert reasons["changed_mind"].fee_amount == 500 and reasons["defective"].defect
    changed = await admin.put_return_reason(
        ReturnReason(code="changed_mind", label="Changed my mind", fee_amount=300)
    )
    assert changed.fee_amount == 300

    reply = await web.send(rma.create_return(new_return("RMA-C1", "TEE", 1, "changed_mind")))
    assert reply.status == 202 and reply.idempotency_key  # required: generated, sent
    created: Return = reply.value
    assert (created.number, created.order, created.line("TEE").fee) == ("RMA-C1", ORDER, 300)
    again = await web.send(rma.create_return(new_return("RMA-C1", "TEE", 1, "changed_mind")))
    assert again.status == 200 and again.value.number == "RMA-C1"
    await web.create_return(new_return("RMA-C2", "MUG", 2))
    read = await web.get_return("RMA-C2")
    assert (read.line("MUG").qty, read.hold("return_approval")) == (2, None)
    page = await web.list_returns(limit=1)
    assert [r.number for r in page.items] == ["RMA-C1"] and page.next_cursor
    assert [r.number async for r in web.iter_returns(limit=1)] == ["RMA-C1", "RMA-C2"]
    assert [r.number for r in (await web.list_returns(order=ORDER, outcome="refund")).items] == [
        "RMA-C1",
        "RMA-C2",
    ]

    with pytest.raises(ApiError) as refused:
        await web.create_return(new_return("RMA-C3", "TEE", 4))  # 3 TEE left to return
    assert refused.value.status == 422
    assert refused.value.extra["errors"][0]["rule"] == "exceeds_shipped"
    warehouse = web.with_options(api_key=make_key("warehouse"))
    with pytest.raises(ApiError) as missing:
        await warehouse.receive_return("NOPE", "DC-EAST", [ReturnedLine(sku="TEE", qty=1)])
    assert (missing.value.status, missing.value.slug) == (404, "not-found")
    credit = await web.get_store_credit("C-1")
    assert (credit.customer_id, credit.balance, credit.entries) == ("C-1", 0, [])


async def test_the_sync_client_returns_too(api: httpx.AsyncClient, shipped: dict[str, Headers]) -> None:
    transport = _OnTheLoop(api.app, asyncio.get_running_loop())  # type: ignore[attr-defined]
    key = shipped["web"]["Authorization"].removeprefix("Bearer ")

    def customer() -> tuple[Return, ApiError]:
        with OmniflowClient("http://testserver", key, transport=transport) as sync:
            created = sync.create_return(new_return(None, "TEE", 1))
            try:
                sync.get_return("RMA-none")
            except ApiError as exc:
                return created, exc
            raise AssertionError("no 404")

    created, missing = await asyncio.to_thread(customer)
    assert created.number.startswith("RMA-") and created.line("TEE").qty == 1
    assert missing.status == 404
