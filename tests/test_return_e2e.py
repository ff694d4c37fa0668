"""End to end over HTTP against the running stack (`omniflow dev`), with the API client, as a
channel, the warehouse and finance use it: an order shipped (captured) is returned in two
returns, the first unit restocked and the second scrapped, each refunded its merchandise and
its share of the tax, once, the order `partially_returned` then `returned`; an exchange for
another SKU holds that SKU's unit at authorization, and once the parcel is received and
inspected charges the difference and places the exchange order, which the warehouse picks,
packs and ships like any other; `omniflow inventory check` and `omniflow ledger check` are
clean."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from bench.chaos import run_checks, worker_process
from bench.common import CHANNELS, LOCATIONS, create_catalog
from client import (
    ApiError,
    ExchangeLine,
    InspectedLine,
    LocationStock,
    NewReturn,
    NewReturnLine,
    NewSku,
    OmniflowClient,
    Order,
    Return,
    ReturnedLine,
)
from client import operations_returns as rma
from tests.stack import DevStack
from tests.test_order_e2e import Shop

pytestmark = pytest.mark.e2e

SKUS = [
    NewSku(code="TEE", name="Tee", unit_cost=600, price=2500),
    NewSku(code="MUG", name="Mug", unit_cost=350, price=1600),
    NewSku(code="CAP", name="Cap", unit_cost=700, price=3000),
]
TAX = 200  # Shop.order's tax on every order
AWAITING_PARCEL = ("authorized", "in_transit")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    s = DevStack(
        tmp_path_factory.mktemp("returns") / "data", extra_env={"OMNIFLOW_RPC_TIMEOUT_SECONDS": "3"}
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shop(stack: DevStack) -> Shop:
    s = Shop(stack)
    create_catalog(s.admin, SKUS, LOCATIONS, CHANNELS)
    for sku in ("TEE", "MUG", "CAP"):
        s.stock(sku, "DC-EAST", 10)
    return s


def shipped(shop: Shop, external_id: str, lines: list[tuple[str, int, int]]) -> Order:
    """An order of the web channel picked, packed and shipped: completed, captured in full."""
    order = shop.order("web", external_id, lines)
    shop.until(order.id, lambda o: o.status == "allocated")
    assert shop.work_the_floor(shop.key("warehouse")) >= 1
    done = shop.until(order.id, lambda o: o.status == "completed")
    assert done.payment.captured == done.amounts.total
    return done


def until_return(
    api: OmniflowClient, number: str, ok: Callable[[Return], bool], timeout: float = 30.0
) -> Return:
    deadline = time.monotonic() + timeout
    ret = api.get_return(number)
    while not ok(ret):
        if time.monotonic() > deadline:
            raise AssertionError(f"return {number} stuck: {ret.status} {ret.lines} {ret.holds}")
        time.sleep(0.2)
        ret = api.get_return(number)
    return ret


def east(shop: Shop, sku: str) -> LocationStock:
    return next(loc for loc in shop.admin.get_stock(sku).locations if loc.location == "DC-EAST")


def refunds_posted(stack: DevStack, order_id: str) -> int:
    """The ledger's `refund` entries for the order: what left the cash clearing account."""
    r = httpx.get(
        f"{stack.api}/v1/ledger/entries",
        params={"ref": order_id, "event": "refund"},
        headers=stack.headers,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    entries = r.json()
    items = entries["items"] if isinstance(entries, dict) else entries
    return sum(ln["credit"] for e in items for ln in e["lines"])


def send_back(shop: Shop, number: str, sku: str, disposition: str) -> Return:
    """The warehouse receives the parcel (one unit of `sku`) at DC-EAST and inspects it."""
    warehouse = shop.key("warehouse")
    until_return(warehouse, number, lambda r: r.status in AWAITING_PARCEL)
    received = warehouse.receive_return(
        number, "DC-EAST", [ReturnedLine(sku=sku, qty=1)], idempotency_key=f"receive-{number}"
    )
    assert received.line(sku).received == 1
    assert east(shop, sku).buckets.get("returns") == 1  # waiting for inspection
    condition = "new" if disposition == "restock" else "damaged"
    line = InspectedLine(sku=sku, qty=1, condition=condition, disposition=disposition)
    warehouse.inspect_return(number, [line], idempotency_key=f"inspect-{number}")
    return until_return(warehouse, number, lambda r: r.status == "completed")


def test_a_return_is_received_inspected_and_refunded_once(shop: Shop, stack: DevStack) -> None:
    order = shipped(shop, "R-1", [("TEE", 2, 2500)])
    web = shop.key("channel", "web")
    on_shelf = east(shop, "TEE").on_hand
    first = NewReturn(
        number="RMA-E1", order=order.id, lines=[NewReturnLine(sku="TEE", qty=1, reason="wrong_size")]
    )
    reply = web.send(rma.create_return(first, idempotency_key="create-RMA-E1"))
    assert reply.status == 202 and reply.idempotency_key
    replayed = web.send(rma.create_return(first, idempotency_key="create-RMA-E1"))
    assert (replayed.status, replayed.replayed) == (202, True)
    assert web.send(rma.create_return(first)).status == 200  # the same return, another key

    done = send_back(shop, "RMA-E1", "TEE", "restock")
    assert (done.refunded, done.fee, done.line("TEE").credited) == (2500 + TAX // 2, 0, 1)
    after = shop.get(order.id)
    assert (after.status, after.line("TEE").returned) == ("partially_returned", 1)
    tee = east(shop, "TEE")
    assert (tee.on_hand, tee.buckets.get("returns", 0)) == (on_shelf + 1, 0)  # back on the shelf

    second = NewReturn(
        number="RMA-E2", order=order.id, lines=[NewReturnLine(sku="TEE", qty=1, reason="defective")]
    )
    web.create_return(second)
    scrapped = send_back(shop, "RMA-E2", "TEE", "scrap")
    assert scrapped.refunded == 2500 + TAX - TAX // 2  # the rest of the tax: telescoped
    final = shop.get(order.id)
    assert (final.status, final.line("TEE").returned) == ("returned", 2)
    tee = east(shop, "TEE")  # scrapped: off to the scrap location, not back on the shelf
    assert (tee.on_hand, tee.buckets.get("returns", 0)) == (on_shelf + 1, 0)
    assert refunds_posted(stack, order.id) == done.refunded + scrapped.refunded == 5000 + TAX
    assert final.payment.status == "partially_refunded"  # the shipping stays paid


def test_a_receipt_retried_after_a_503_is_taken_once(shop: Shop) -> None:
    """A parcel in parts: the first part's receipt meets a worker that does not answer in
    time (503) but goes through once it does; the warehouse retries it with the same
    Idempotency-Key and the part is taken once, not twice."""
    order = shipped(shop, "R-3", [("TEE", 2, 2500)])
    web, warehouse = shop.key("channel", "web"), shop.key("warehouse")
    lines = [NewReturnLine(sku="TEE", qty=2, reason="wrong_size")]
    web.create_return(NewReturn(number="RMA-E3", order=order.id, lines=lines))
    until_return(warehouse, "RMA-E3", lambda r: r.status in AWAITING_PARCEL)
    part = [ReturnedLine(sku="TEE", qty=1)]
    worker = worker_process(shop.stack)
    assert worker is not None
    worker.suspend()
    try:
        with pytest.raises(ApiError) as late:
            warehouse.receive_return("RMA-E3", "DC-EAST", part, idempotency_key="receive-E3-1")
        assert late.value.status == 503
    finally:
        worker.resume()
    until_return(warehouse, "RMA-E3", lambda r: r.line("TEE").received == 1)  # the first try went through
    again = warehouse.receive_return("RMA-E3", "DC-EAST", part, idempotency_key="receive-E3-1")
    assert again.line("TEE").received == 1
    rest = warehouse.receive_return("RMA-E3", "DC-EAST", part, idempotency_key="receive-E3-2")
    assert rest.line("TEE").received == 2
    inspected = InspectedLine(sku="TEE", qty=2, condition="new", disposition="restock")
    warehouse.inspect_return("RMA-E3", [inspected], idempotency_key="inspect-E3")
    done = until_return(warehouse, "RMA-E3", lambda r: r.status == "completed")
    assert done.refunded == 5000 + TAX


def test_an_exchange_holds_its_unit_charges_the_difference_and_ships(shop: Shop, stack: DevStack) -> None:
    order = shipped(shop, "R-2", [("MUG", 1, 1600)])
    web, warehouse = shop.key("channel", "web"), shop.key("warehouse")
    before = east(shop, "CAP")
    exchange = NewReturn(
        number="RMA-X1",
        order=order.id,
        lines=[NewReturnLine(sku="MUG", qty=1, reason="wrong_size")],
        outcome="exchange",
        exchange_lines=[ExchangeLine(sku="CAP", qty=1, unit_price=3000)],
    )
    web.create_return(exchange)
    held = until_return(web, "RMA-X1", lambda r: r.status in AWAITING_PARCEL and r.exchange_order is not None)
    cap = east(shop, "CAP")
    assert (cap.reserved, cap.available) == (before.reserved + 1, before.available - 1)  # held at once

    done = send_back(shop, "RMA-X1", "MUG", "restock")
    assert (done.charged, done.refunded) == (3000 - (1600 + TAX), 0)  # the customer pays the rest
    assert done.exchange_order == held.exchange_order
    new_id = str(done.exchange_order)
    new = shop.until(new_id, lambda o: o.status == "allocated")
    assert [(ln.sku, ln.qty) for ln in new.lines] == [("CAP", 1)]
    assert shop.work_the_floor(warehouse) == 1
    shipped_new = shop.until(new_id, lambda o: o.status == "completed")
    assert shipped_new.line("CAP").shipped == 1
    cap = east(shop, "CAP")
    assert (cap.on_hand, cap.reserved) == (before.on_hand - 1, before.reserved)
    assert shop.get(order.id).status == "returned"
    with pytest.raises(ApiError) as again:  # nothing more of the order to return
        web.create_return(
            NewReturn(
                number="RMA-X2", order=order.id, lines=[NewReturnLine(sku="MUG", qty=1, reason="defective")]
            )
        )
    assert again.value.status == 422
    checks = run_checks(stack)
    assert all(c["exit"] == 0 and c["findings"] == 0 for c in checks.values()), checks
