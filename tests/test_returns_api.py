"""The returns API (docs/api.md, "Returns") over HTTP with the real worker shipping the order
first: the managed list of reasons; a return recorded against what shipped, with its fees
and keep-the-item lines (202), replayed (same key), answered again (same number and body,
200) or refused (other data, 409); refusals naming the line and the rule (422); a channel
key that sees nothing of another channel (404); and returns racing for the same shipped
units over a real socket, of which exactly one is recorded. Whether the return's workflow
then progresses is the workflow's tests' business: these assert what the route records."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from tests.factories import receive
from tests.live_api import live_api
from tests.orders_api import Headers, create, idem, order_body
from tests.test_orders_api_workflow import _wait_for

ORDER = "order-web-R-1"
LINES = [{"sku": "TEE", "qty": 4, "unit_price": 2000}, {"sku": "MUG", "qty": 2, "unit_price": 400}]
TOTAL = 4 * 2000 + 2 * 400 + 500
LIVE = ("requested", "authorized", "in_transit", "received", "inspected", "completed")


async def _ship_everything(api: httpx.AsyncClient, keys: dict[str, Headers], order_id: str) -> dict[str, Any]:
    """Pick, pack and ship every shipment of the order, as the warehouse would."""
    web, wh = keys["web"], keys["warehouse"]
    order = await _wait_for(api, web, order_id, lambda o: o["status"] == "allocated" and o["shipments"])
    for shipment in order["shipments"]:
        sid = shipment["id"]
        picked = {"lines": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in shipment["lines"]]}
        assert (await api.post(f"/v1/shipments/{sid}/pick", json=picked, headers=wh)).status_code == 200
        package = {"weight_g": 600, "length_mm": 300, "width_mm": 200, "height_mm": 100, **picked}
        r = await api.post(f"/v1/shipments/{sid}/pack", json={"packages": [package]}, headers=wh)
        assert r.status_code == 200, r.text
        ship = {"carrier": "UPS", "service": "ground", "tracking": f"1Z{sid[-6:]}"}
        assert (await api.post(f"/v1/shipments/{sid}/ship", json=ship, headers=wh)).status_code == 200
    return await _wait_for(api, web, order_id, lambda o: o["status"] == "completed")


@pytest.fixture
async def shipped(
    api: httpx.AsyncClient, keys: dict[str, Headers], engine: AsyncEngine, worker: Worker
) -> dict[str, Headers]:
    """Order order-web-R-1 (4 TEE at 20.00, 2 MUG at 4.00, customer C-1) shipped in full."""
    await receive(engine, "TEE", "DC-EAST", 10)
    await receive(engine, "MUG", "DC-EAST", 10)
    payment = {"method": "card", "status": "captured", "amount": TOTAL, "reference": "ch_r1"}
    r = await create(api, keys["web"], order_body("R-1", lines=LINES, payment=payment))
    assert r.status_code == 202, r.text
    order = await _ship_everything(api, keys, ORDER)
    assert {ln["sku"]: ln["shipped"] for ln in order["lines"]} == {"TEE": 4, "MUG": 2}
    return keys


def rma(
    number: str | None, *lines: tuple[str, int, str], outcome: str = "refund", **over: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order": ORDER,
        "lines": [{"sku": s, "qty": q, "reason": why} for s, q, why in lines],
        "outcome": outcome,
        **over,
    }
    if number is not None:
        body["number"] = number
    return body


def rule_of(r: httpx.Response) -> tuple[list[Any], str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    error = r.json()["errors"][0]
    return list(error["loc"]), error["rule"]


# -- reasons -----------------------------------------------------------------------------------


async def test_reasons_are_a_managed_list(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    listed = await api.get("/v1/return-reasons", headers=keys["readonly"])
    assert listed.status_code == 200
    by_code = {r["code"]: r for r in listed.json()}
    assert set(by_code) >= {
        "defective",
        "damaged_in_transit",
        "not_as_described",
        "wrong_size",
        "changed_mind",
    }
    assert by_code["changed_mind"] == {
        "code": "changed_mind",
        "label": "Changed my mind",
        "fee_amount": 500,
        "fee_percent": 0,
        "defect": False,
    }
    admin = keys["admin"]
    late = {"code": "arrived_late", "label": "Arrived too late", "fee_amount": 0, "fee_percent": 10}
    r = await api.post("/v1/return-reasons", json=late, headers=admin)
    assert r.status_code == 201 and r.json() == {**late, "defect": False}, r.text
    assert (await api.post("/v1/return-reasons", json=late, headers=admin)).status_code == 200
    cheaper = {**late, "fee_percent": 5}
    r = await api.post("/v1/return-reasons", json=cheaper, headers=admin)
    assert r.status_code == 200 and r.json()["fee_percent"] == 5
    got = {r["code"]: r for r in (await api.get("/v1/return-reasons", headers=keys["web"])).json()}
    assert got["arrived_late"]["fee_percent"] == 5
    assert (await api.post("/v1/return-reasons", json=late, headers=keys["warehouse"])).status_code == 403
    assert (await api.post("/v1/return-reasons", json=late, headers=keys["web"])).status_code == 403
    for bad in ({**late, "fee_percent": 101}, {**late, "fee_amount": -1}, {**late, "surprise": 1}):
        assert (await api.post("/v1/return-reasons", json=bad, headers=admin)).status_code == 422


# -- create and read ---------------------------------------------------------------------------


async def test_a_return_is_recorded_with_its_fees_and_keep_it_lines(
    api: httpx.AsyncClient, shipped: dict[str, Headers], settings: Settings, engine: AsyncEngine
) -> None:
    settings.return_keep_threshold = 500  # a MUG (4.00) is refunded without a parcel
    web = shipped["web"]
    body = rma("RMA-1", ("TEE", 1, "changed_mind"), ("MUG", 1, "defective"))
    headers = idem(web)
    r = await api.post("/v1/returns", json=body, headers=headers)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == "/v1/returns/RMA-1"
    got = r.json()
    assert (got["number"], got["id"], got["order"], got["channel"]) == ("RMA-1", "RMA-1", ORDER, "web")
    assert (got["customer_id"], got["currency"], got["outcome"], got["instant"]) == (
        "C-1",
        "USD",
        "refund",
        False,
    )
    assert got["status"] in LIVE  # the workflow may have moved it on already
    assert got["needs_approval"] is False and got["approval_reasons"] == []
    lines = {ln["sku"]: ln for ln in got["lines"]}
    assert (lines["TEE"]["fee"], lines["TEE"]["keep"], lines["TEE"]["unit_price"]) == (500, False, 2000)
    assert (lines["MUG"]["fee"], lines["MUG"]["keep"], lines["MUG"]["reason"]) == (0, True, "defective")
    assert lines["TEE"]["order_line"] != lines["MUG"]["order_line"]
    assert got["fee"] == 500 and got["exchange_order"] is None and got["new_order_lines"] == []
    assert got["deadline_at"] and got["workflow_id"] == "rma-RMA-1"
    assert got["holds"] == [] and isinstance(got["refunds"], list)

    replay = await api.post("/v1/returns", json=body, headers=headers)  # the same key and body
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    again = await api.post("/v1/returns", json=body, headers=idem(web))  # the same number and body
    assert again.status_code == 200 and again.json()["number"] == "RMA-1"
    other = await api.post("/v1/returns", json={**body, "outcome": "store_credit"}, headers=idem(web))
    assert other.status_code == 409, other.text
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM sales_return"))).scalar_one()
    assert count == 1
    missing = await api.post("/v1/returns", json=rma("RMA-2", ("TEE", 1, "wrong_size")), headers=web)
    assert missing.status_code == 400 and missing.json()["type"] == "/problems/idempotency-key-required"

    read = await api.get("/v1/returns/RMA-1", headers=web)
    assert read.status_code == 200
    assert [(ln["sku"], ln["qty"], ln["fee"]) for ln in read.json()["lines"]] == [
        ("MUG", 1, 0),
        ("TEE", 1, 500),
    ]
    for query, numbers in (
        ({"order": ORDER}, ["RMA-1"]),
        ({"outcome": "refund"}, ["RMA-1"]),
        ({"outcome": "exchange"}, []),
        ({"order": "order-web-NOPE"}, []),
    ):
        listed = await api.get("/v1/returns", params=query, headers=shipped["readonly"])
        assert [x["number"] for x in listed.json()["items"]] == numbers, query
    assert (await api.get("/v1/returns?status=bogus", headers=web)).status_code == 422
    assert (await api.get("/v1/returns/NOPE", headers=web)).status_code == 404


async def test_a_number_is_generated_and_outcomes_record_their_new_order(
    api: httpx.AsyncClient, shipped: dict[str, Headers]
) -> None:
    web = shipped["web"]
    r = await api.post(
        "/v1/returns", json=rma(None, ("TEE", 1, "defective"), outcome="replacement"), headers=idem(web)
    )
    assert r.status_code == 202, r.text
    assert r.json()["number"].startswith("RMA-") and r.json()["fee"] == 0
    assert r.json()["new_order_lines"] == [{"sku": "TEE", "qty": 1, "unit_price": 0}]
    exchange = rma(
        "RMA-X",
        ("TEE", 1, "wrong_size"),
        outcome="exchange",
        instant=True,
        exchange_lines=[{"sku": "MUG", "qty": 2, "unit_price": 400}],
    )
    r = await api.post("/v1/returns", json=exchange, headers=idem(web))
    assert r.status_code == 202, r.text
    assert r.json()["new_order_lines"] == [{"sku": "MUG", "qty": 2, "unit_price": 400}]
    assert r.json()["instant"] is True and r.json()["lines"][0]["fee"] == 0  # wrong_size is free
    credit = rma("RMA-C", ("TEE", 1, "changed_mind"), outcome="store_credit", instant=True)
    r = await api.post("/v1/returns", json=credit, headers=idem(web))
    assert r.status_code == 202, r.text
    assert (
        r.json()["lines"][0]["fee"] == 0 and r.json()["instant"] is False
    )  # fee-free; instant is for new orders
    listed = await api.get("/v1/returns", params={"outcome": "exchange"}, headers=web)
    assert [x["number"] for x in listed.json()["items"]] == ["RMA-X"]
    # 3 of 4 TEE are on returns now: one more is fine, two are not.
    r = await api.post("/v1/returns", json=rma("RMA-9", ("TEE", 2, "defective")), headers=idem(web))
    assert rule_of(r) == (["body", "lines", 0], "exceeds_shipped")


async def test_refusals_name_the_line_and_the_rule(
    api: httpx.AsyncClient, shipped: dict[str, Headers]
) -> None:
    web = shipped["web"]
    for body, loc, rule in (
        (rma("R", ("TEE", 1, "defective"), ("MUG", 1, "bored")), ["body", "lines", 1], "unknown_reason"),
        (rma("R", ("COFFEE", 1, "defective")), ["body", "lines", 0], "not_shipped"),
        (rma("R", ("MUG", 1, "defective"), ("TEE", 5, "defective")), ["body", "lines", 1], "exceeds_shipped"),
        (rma("R", ("TEE", 1, "defective"), ("TEE", 1, "defective")), ["body", "lines", 1], "duplicate"),
        (rma("R", ("TEE", 1, "defective"), outcome="exchange"), ["body", "exchange_lines"], "required"),
        (
            rma("R", ("TEE", 1, "defective"), exchange_lines=[{"sku": "MUG", "qty": 1, "unit_price": 1}]),
            ["body", "exchange_lines"],
            "not_exchange",
        ),
        (
            rma(
                "R",
                ("TEE", 1, "defective"),
                outcome="exchange",
                exchange_lines=[{"sku": "NOPE", "qty": 1, "unit_price": 1}],
            ),
            ["body", "exchange_lines", 0],
            "unknown_sku",
        ),
    ):
        r = await api.post("/v1/returns", json=body, headers=idem(web))
        assert rule_of(r) == (loc, rule), body
        assert r.json()["errors"][0]["msg"]
    r = await api.post("/v1/returns", json=rma("R", ("TEE", 0, "defective")), headers=idem(web))
    assert r.status_code == 422  # a line has at least one unit (the schema says so)
    r = await api.post("/v1/returns", json={**rma("R", ("TEE", 1, "defective")), "x": 1}, headers=idem(web))
    assert r.status_code == 422
    r = await api.post("/v1/returns", json=rma("R", ("TEE", 1, "defective"), order="nope"), headers=idem(web))
    assert r.status_code == 404
    assert (await api.get("/v1/returns", headers=web)).json()["items"] == []  # nothing was recorded


async def test_a_return_outside_the_window_waits_for_a_person(
    api: httpx.AsyncClient, shipped: dict[str, Headers], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE sku SET returnable_days = 0 WHERE code = 'MUG'"))
    r = await api.post(
        "/v1/returns", json=rma("RMA-A", ("MUG", 1, "defective")), headers=idem(shipped["web"])
    )
    assert r.status_code == 202, r.text
    assert r.json()["needs_approval"] is True
    assert r.json()["approval_reasons"] == [
        {"line": 0, "rule": "not_returnable", "message": "line 0: MUG is not returnable"}
    ]


# -- who sees what -----------------------------------------------------------------------------


async def test_another_channel_sees_nothing_of_the_return(
    api: httpx.AsyncClient, shipped: dict[str, Headers]
) -> None:
    web, market = shipped["web"], shipped["marketplace"]
    r = await api.post("/v1/returns", json=rma("RMA-M", ("TEE", 1, "defective")), headers=idem(market))
    assert r.status_code == 404 and r.json()["detail"] == f"order {ORDER} was not found"
    assert (
        await api.post("/v1/returns", json=rma("RMA-W", ("TEE", 1, "defective")), headers=idem(web))
    ).status_code == 202
    assert (await api.get("/v1/returns/RMA-W", headers=market)).status_code == 404
    assert (await api.get("/v1/returns", headers=market)).json()["items"] == []
    assert [x["number"] for x in (await api.get("/v1/returns", headers=web)).json()["items"]] == ["RMA-W"]
    cancel = {"reason": "not mine"}
    assert (await api.post("/v1/returns/RMA-W/cancel", json=cancel, headers=market)).status_code == 404
    received = {"location": "DC-EAST", "lines": [{"sku": "TEE", "qty": 1}]}
    assert (await api.post("/v1/returns/RMA-W/receive", json=received, headers=web)).status_code == 403
    assert (
        await api.post("/v1/returns/NOPE/receive", json=received, headers=shipped["warehouse"])
    ).status_code == 404
    inspected = {"lines": [{"sku": "TEE", "qty": 1, "condition": "new", "disposition": "restock"}]}
    assert (
        await api.post("/v1/returns/NOPE/inspect", json=inspected, headers=shipped["warehouse"])
    ).status_code == 404
    bad = {"lines": [{"sku": "TEE", "qty": 1, "condition": "new", "disposition": "burn"}]}
    assert (
        await api.post("/v1/returns/RMA-W/inspect", json=bad, headers=shipped["warehouse"])
    ).status_code == 422

    credit = await api.get("/v1/customers/C-1/store-credit", headers=web)
    assert credit.status_code == 200, credit.text
    assert credit.json() == {"customer_id": "C-1", "balance": 0, "currency": "USD", "entries": []}
    assert (await api.get("/v1/customers/C-1/store-credit", headers=shipped["finance"])).status_code == 200
    assert (await api.get("/v1/customers/C-1/store-credit", headers=market)).status_code == 404
    assert (await api.get("/v1/customers/C-1/store-credit", headers=shipped["warehouse"])).status_code == 403
    # The order shows its returned units per line and may be listed by the return statuses.
    order = (await api.get(f"/v1/orders/{ORDER}", headers=web)).json()
    assert all(ln["returned"] == 0 for ln in order["lines"])
    for status in ("partially_returned", "returned"):
        assert (await api.get("/v1/orders", params={"status": status}, headers=web)).status_code == 200


async def test_store_credit_lists_the_entries_newest_first(
    api: httpx.AsyncClient, shipped: dict[str, Headers], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        for key, amount, kind in (("k1", 1000, "issued"), ("k2", 100, "bonus"), ("k3", -300, "spent")):
            await conn.execute(
                text(
                    "INSERT INTO store_credit_entry (customer_id, currency, amount, kind, key, ref, at)"
                    " VALUES ('C-1', 'EUR', :a, :kind, :key, 'RMA-1', now())"
                ),
                {"a": amount, "kind": kind, "key": key},
            )
    got = (await api.get("/v1/customers/C-1/store-credit", headers=shipped["finance"])).json()
    assert (got["balance"], got["currency"]) == (800, "EUR")
    assert [(e["amount"], e["kind"], e["ref"]) for e in got["entries"]] == [
        (-300, "spent", "RMA-1"),
        (100, "bonus", "RMA-1"),
        (1000, "issued", "RMA-1"),
    ]


# -- races -------------------------------------------------------------------------------------

RACERS = 8


async def test_returns_racing_for_the_same_units_cannot_exceed_what_shipped(
    api: httpx.AsyncClient, shipped: dict[str, Headers], settings: Settings, temporal_client: Client
) -> None:
    """8 returns at once over a real socket, each for all 4 shipped TEE: the order's row lock
    makes each one see the units the ones before it took, so exactly one is recorded."""
    web = shipped["web"]
    async with (
        live_api(settings, temporal_client) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):

        async def one(i: int) -> httpx.Response:
            headers = {**web, "Idempotency-Key": uuid.uuid4().hex}
            return await client.post(
                "/v1/returns", json=rma(f"RACE-{i}", ("TEE", 4, "defective")), headers=headers
            )

        answers = await asyncio.gather(*(one(i) for i in range(RACERS)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [202] + [422] * (RACERS - 1), [r.text for r in answers]
    refused = [rule_of(r) for r in answers if r.status_code == 422]
    assert refused == [(["body", "lines", 0], "exceeds_shipped")] * (RACERS - 1)
    listed = (await api.get("/v1/returns", headers=web)).json()["items"]
    assert len(listed) == 1 and listed[0]["lines"][0]["qty"] == 4
