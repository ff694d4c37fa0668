"""Every path of a return against the real activities, over the API, on the time-skipping
test server: approval (approved, rejected, default reject), expiry, each disposition, store
credit, replacement, exchange, fees, keep-it, refund approval and the refund SLA; stock and
books clean after each."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from domain.posting import (
    RETURN_FEE_REVENUE,
    SHRINKAGE,
    STORE_CREDIT_BONUS,
    STORE_CREDIT_LIABILITY,
    VENDOR_RECEIVABLE,
)
from runtime.settings import Settings
from tests.conftest import Desk
from tests.factories import assert_inventory_clean, balance, receive
from tests.orders import fulfil, place_order, until
from tests.returns import (
    act,
    balances,
    create_return,
    decide,
    inspection,
    receipt,
    reserved,
    return_body,
    shipped_order,
    units_held,
    until_return,
)
from tests.test_replay import record_history
from workflows.contracts import CancelRequest, OrderSnapshot

DAY = 86_400


async def _shipped(engine: AsyncEngine, client: Client, settings: Settings, ext: str, qty: int = 2) -> str:
    await receive(engine, "TEE", "DC-EAST", 20)
    return await shipped_order(engine, client, settings, ext, [("TEE", qty, 2000)], tax=0)


async def test_outside_the_window_waits_for_approval_and_is_approved_or_rejected(
    desk: Desk, worker: Worker
) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "A-1", qty=3)
    async with desk.engine.begin() as conn:
        await conn.execute(text("UPDATE shipment SET shipped_at = now() - interval '90 days'"))
    r = await create_return(
        desk.api, desk.keys["web"], return_body("A1", order_id, [("TEE", 1, "wrong_size")])
    )
    assert r.status_code == 202 and r.json()["status"] == "requested", r.text
    assert r.json()["approval_reasons"][0]["rule"] == "outside_window"
    await decide(
        desk.api,
        desk.keys["approver"] if "approver" in desk.keys else desk.keys["admin"],
        "A1",
        "return_approval",
        "approve",
    )
    await until_return(desk.api, desk.keys["admin"], "A1", lambda x: x["status"] == "in_transit")
    r = await create_return(
        desk.api, desk.keys["web"], return_body("A2", order_id, [("TEE", 1, "wrong_size")])
    )
    await decide(desk.api, desk.keys["admin"], "A2", "return_approval", "reject", "worn")
    rejected = await until_return(desk.api, desk.keys["admin"], "A2", lambda x: x["status"] == "rejected")
    assert "worn" in rejected["note"]
    # nobody decides: escalated at each SLA, then the default (reject)
    r = await create_return(
        desk.api, desk.keys["web"], return_body("A3", order_id, [("TEE", 1, "wrong_size")])
    )
    await until_return(desk.api, desk.keys["admin"], "A3", lambda x: bool(x["holds"]))
    await desk.env.sleep(5 * DAY)
    await until_return(desk.api, desk.keys["admin"], "A3", lambda x: x["status"] == "rejected")
    await record_history(desk.client, "rma-A2", "return-approval-rejected")
    await assert_inventory_clean(desk.engine)


async def test_nothing_arrives_by_the_deadline_and_an_exchange_lets_its_held_units_go(
    desk: Desk, worker: Worker
) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "E-1")
    await receive(desk.engine, "MUG", "DC-EAST", 5)
    body = return_body(
        "E1",
        order_id,
        [("TEE", 1, "wrong_size")],
        outcome="exchange",
        exchange_lines=[{"sku": "MUG", "qty": 1, "unit_price": 1500}],
    )
    assert (await create_return(desk.api, desk.keys["web"], body)).status_code == 202
    await until_return(
        desk.api, desk.keys["admin"], "E1", units_held
    )  # status shows in_transit before the hold
    assert await reserved(desk.engine, "MUG") == 1  # held for the exchange while the parcel travels
    await desk.env.sleep(31 * DAY)
    expired = await until_return(desk.api, desk.keys["admin"], "E1", lambda x: x["status"] == "expired")
    assert expired["exchange_order"] and await reserved(desk.engine, "MUG") == 0
    late = await act(desk.api, desk.keys["warehouse"], "E1", "receive", receipt("DC-EAST", ("TEE", 1)))
    assert late.status_code == 409
    await record_history(desk.client, "rma-E1", "return-exchange-expired")
    await assert_inventory_clean(desk.engine)


async def test_each_disposition_moves_and_posts_the_units(desk: Desk, worker: Worker) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "D-1", qty=5)
    await create_return(desk.api, desk.keys["web"], return_body("D1", order_id, [("TEE", 5, "defective")]))
    await until_return(desk.api, desk.keys["admin"], "D1", lambda x: x["status"] == "in_transit")
    sellable = (await balance(desk.engine, "TEE", "DC-EAST"))[0]
    r = await act(desk.api, desk.keys["warehouse"], "D1", "receive", receipt("DC-EAST", ("TEE", 5)))
    assert r.status_code == 200, r.text
    dispositions = ("restock", "refurbish", "quarantine", "scrap", "return_to_vendor")
    r = await act(
        desk.api,
        desk.keys["warehouse"],
        "D1",
        "inspect",
        inspection(*[("TEE", 1, "defective", d) for d in dispositions]),
    )
    assert r.status_code == 200, r.text
    done = await until_return(desk.api, desk.keys["admin"], "D1", lambda x: x["status"] == "completed")
    assert done["lines"][0]["dispositions"] == dict.fromkeys(dispositions, 1)
    assert (await balance(desk.engine, "TEE", "DC-EAST"))[0] == sellable + 1
    assert (await balance(desk.engine, "TEE", "DC-EAST", "quarantine"))[0] == 2
    assert (await balance(desk.engine, "TEE", "DC-EAST", "returns"))[0] == 0
    books = await balances(desk.engine, [SHRINKAGE, VENDOR_RECEIVABLE])
    assert books[SHRINKAGE] > 0 and books[VENDOR_RECEIVABLE] > 0  # a unit at its cost each
    assert books[SHRINKAGE] == books[VENDOR_RECEIVABLE]
    assert done["refunded"] == 10_000  # a defect pays no fee
    await record_history(desk.client, "rma-D1", "return-dispositions-refunded")
    await assert_inventory_clean(desk.engine)


async def test_store_credit_with_its_bonus_is_a_liability_and_a_balance(desk: Desk, worker: Worker) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "C-1")
    await create_return(
        desk.api,
        desk.keys["web"],
        return_body("C1", order_id, [("TEE", 1, "changed_mind")], outcome="store_credit"),
    )
    await act(desk.api, desk.keys["warehouse"], "C1", "receive", receipt("DC-EAST", ("TEE", 1)))
    await act(desk.api, desk.keys["warehouse"], "C1", "inspect", inspection(("TEE", 1, "new", "restock")))
    done = await until_return(desk.api, desk.keys["admin"], "C1", lambda x: x["status"] == "completed")
    assert done["store_credit"] == 2200 and done["refunded"] == 0  # 2000 + 10 % bonus, no fee for credit
    credit = (await desk.api.get("/v1/customers/cust-1/store-credit", headers=desk.keys["admin"])).json()
    assert credit["balance"] == 2200
    books = await balances(desk.engine, [STORE_CREDIT_LIABILITY, STORE_CREDIT_BONUS])
    assert books == {STORE_CREDIT_LIABILITY: -2200, STORE_CREDIT_BONUS: 200}
    # the credit pays a new order (revenue out of the liability); its cancel gives it back
    spend = await place_order(
        desk.engine,
        desk.client,
        desk.settings,
        "C-2",
        [("TEE", 1, 2000)],
        shipping=0,
        payment="authorized",
        method="store_credit",
    )
    paid = await until(spend, lambda s: bool(s.shipments))
    assert (await desk.api.get("/v1/customers/cust-1/store-credit", headers=desk.keys["admin"])).json()[
        "balance"
    ] == 200
    too_much = await place_order(
        desk.engine,
        desk.client,
        desk.settings,
        "C-3",
        [("TEE", 1, 2000)],
        shipping=0,
        payment="authorized",
        method="store_credit",
    )
    assert (await until(too_much, lambda s: s.status == "on_hold")).status == "on_hold"  # 200 left: declined
    await spend.execute_update("cancel", CancelRequest(reason="changed plans"), result_type=OrderSnapshot)
    await until(spend, lambda s: s.status == "cancelled")
    assert paid.status != "cancelled"
    assert (await desk.api.get("/v1/customers/cust-1/store-credit", headers=desk.keys["admin"])).json()[
        "balance"
    ] == 2200
    assert (await balances(desk.engine, [STORE_CREDIT_LIABILITY]))[STORE_CREDIT_LIABILITY] == -2200
    await assert_inventory_clean(desk.engine)


async def test_a_fee_is_kept_and_a_cheap_line_is_refunded_without_a_parcel(
    desk: Desk, worker: Worker
) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "F-1", qty=3)
    await create_return(desk.api, desk.keys["web"], return_body("F1", order_id, [("TEE", 1, "changed_mind")]))
    await act(desk.api, desk.keys["warehouse"], "F1", "receive", receipt("DC-EAST", ("TEE", 1)))
    await act(desk.api, desk.keys["warehouse"], "F1", "inspect", inspection(("TEE", 1, "opened", "restock")))
    done = await until_return(desk.api, desk.keys["admin"], "F1", lambda x: x["status"] == "completed")
    assert (done["refunded"], done["fee"]) == (1500, 500)
    assert (await balances(desk.engine, [RETURN_FEE_REVENUE]))[RETURN_FEE_REVENUE] == -500
    desk.settings.return_keep_threshold = 2500
    await create_return(desk.api, desk.keys["web"], return_body("F2", order_id, [("TEE", 1, "defective")]))
    kept = await until_return(desk.api, desk.keys["admin"], "F2", lambda x: x["status"] == "completed")
    assert kept["lines"][0]["keep"] and kept["refunded"] == 2000 and kept["lines"][0]["received"] == 0
    order = (await desk.api.get(f"/v1/orders/{order_id}", headers=desk.keys["admin"])).json()
    assert order["lines"][0]["returned"] == 2
    await record_history(desk.client, "rma-F2", "return-kept-refunded")
    await assert_inventory_clean(desk.engine)


async def test_a_large_refund_waits_for_approval_and_an_uninspected_one_escalates(
    desk: Desk, worker: Worker
) -> None:
    desk.settings.refund_approval_threshold = 1000
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "P-1")
    await create_return(desk.api, desk.keys["web"], return_body("P1", order_id, [("TEE", 1, "defective")]))
    await act(desk.api, desk.keys["warehouse"], "P1", "receive", receipt("DC-EAST", ("TEE", 1)))
    await act(desk.api, desk.keys["warehouse"], "P1", "inspect", inspection(("TEE", 1, "new", "restock")))
    await decide(desk.api, desk.keys["admin"], "P1", "refund_approval", "approve")
    assert (await until_return(desk.api, desk.keys["admin"], "P1", lambda x: x["status"] == "completed"))[
        "refunded"
    ] == 2000
    # received and never inspected: past the refund SLA a person is asked; refund now
    desk.settings.refund_approval_threshold = 0
    await create_return(desk.api, desk.keys["web"], return_body("P2", order_id, [("TEE", 1, "defective")]))
    await act(desk.api, desk.keys["warehouse"], "P2", "receive", receipt("DC-EAST", ("TEE", 1)))
    await desk.env.sleep(3 * DAY)
    await decide(desk.api, desk.keys["admin"], "P2", "refund_overdue", "refund_now")
    refunded = await until_return(desk.api, desk.keys["admin"], "P2", lambda x: x["refunded"] == 2000)
    assert refunded["status"] == "received"  # the money went; the inspection still comes
    await act(desk.api, desk.keys["warehouse"], "P2", "inspect", inspection(("TEE", 1, "new", "restock")))
    await until_return(desk.api, desk.keys["admin"], "P2", lambda x: x["status"] == "completed")
    await record_history(desk.client, "rma-P2", "return-refund-overdue")
    await assert_inventory_clean(desk.engine)


async def test_an_exchange_order_takes_its_held_units_and_ships_and_the_difference_is_charged(
    desk: Desk, worker: Worker
) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "X-1")
    await receive(
        desk.engine, "MUG", "DC-EAST", 1
    )  # the only MUG: held for the exchange, nobody else gets it
    body = return_body(
        "X1",
        order_id,
        [("TEE", 1, "wrong_size")],
        outcome="exchange",
        exchange_lines=[{"sku": "MUG", "qty": 1, "unit_price": 2600}],
    )
    await create_return(desk.api, desk.keys["web"], body)
    await until_return(
        desk.api, desk.keys["admin"], "X1", units_held
    )  # status shows in_transit before the hold
    assert await reserved(desk.engine, "MUG") == 1
    await act(desk.api, desk.keys["warehouse"], "X1", "receive", receipt("DC-EAST", ("TEE", 1)))
    await act(desk.api, desk.keys["warehouse"], "X1", "inspect", inspection(("TEE", 1, "new", "restock")))
    done = await until_return(desk.api, desk.keys["admin"], "X1", lambda x: x["status"] == "completed")
    assert done["charged"] == 600 and done["refunded"] == 0  # 2600 − the 2000 credited
    new = desk.client.get_workflow_handle(done["exchange_order"])
    snap = await until(new, lambda s: bool(s.shipments))
    assert snap.shipments[0].location == "DC-EAST"  # the held units became its shipment
    await fulfil(new, snap.shipments[0].id)
    await until(new, lambda s: s.status in ("shipped", "completed"))
    assert await reserved(desk.engine, "MUG") == 0
    await record_history(desk.client, "rma-X1", "return-exchange-charged")
    await assert_inventory_clean(desk.engine)


async def test_a_replacement_ships_at_no_charge_once_the_parcel_is_back(desk: Desk, worker: Worker) -> None:
    order_id = await _shipped(desk.engine, desk.client, desk.settings, "RP-1")
    await create_return(
        desk.api,
        desk.keys["web"],
        return_body("RP1", order_id, [("TEE", 1, "defective")], outcome="replacement"),
    )
    await act(desk.api, desk.keys["warehouse"], "RP1", "receive", receipt("DC-EAST", ("TEE", 1)))
    await act(
        desk.api, desk.keys["warehouse"], "RP1", "inspect", inspection(("TEE", 1, "defective", "scrap"))
    )
    done = await until_return(desk.api, desk.keys["admin"], "RP1", lambda x: x["status"] == "completed")
    assert (done["refunded"], done["charged"], done["fee"]) == (0, 0, 0)
    new = desk.client.get_workflow_handle(done["exchange_order"])
    snap = await until(new, lambda s: bool(s.shipments))
    await fulfil(new, snap.shipments[0].id)
    shipped = await until(new, lambda s: s.status in ("shipped", "completed"))
    assert shipped.lines[0].sku == "TEE" and shipped.lines[0].shipped == 1
    async with desk.engine.connect() as conn:
        paid = (
            await conn.execute(
                text("SELECT merchandise, captured FROM sales_order WHERE id = :o"), {"o": new.id}
            )
        ).one()
    assert (paid.merchandise, paid.captured) == (0, 0)
    await assert_inventory_clean(desk.engine)
