"""The scripted scenario of the KPI report's tests (tests/test_kpis.py). Quantities are
driven through the real workflows and worker (orders sourced, picked, packed and shipped, a
backorder); the moments are then written directly, because when things happened is what the
KPIs measure and the workflows record the real now().

D0 is ten days ago at noon; the ship-by times are the defaults (standard 2 days). Stock: 10
TEE at DC-EAST, 10 MUG at DC-WEST.

- A (web) TEE 2, received day 0, shipped 1 h later: on time, complete.
- B (web) TEE 1 + MUG 1, received day 1: two shipments (DC-EAST, DC-WEST) 2 h and 5 h
  later: split, on time.
- C (web) TEE 1, received day 2, shipped 3 days later: late.
- D (web) MUG 12, received day 3: 9 reserved, 3 backordered since day 3; nothing shipped,
  past its ship-by time.
- E (marketplace) TEE 1, received day 4, shipped 30 min later.

`further` plays returns, cycle counts and purchase orders on top (listed above it).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from runtime.settings import Settings
from tests import returns as rma
from tests.factories import add_sku, receive
from tests.orders import fulfil, place_order, stocked_shop, until
from tests.purchase_orders import add_item, add_supplier, place_po, po_when
from workflows.contracts import QcLine, QcRequest, Receipt, ReceiptLine, order_workflow_id
from workflows.purchase_order import PurchaseOrderWorkflow as PO

Headers = dict[str, str]

D0 = datetime.combine(datetime.now(UTC).date() - timedelta(days=10), time(12), UTC)
HOUR = 3600.0


def day(n: float) -> datetime:
    return D0 + timedelta(days=n)


async def write(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def _ship_all(
    client: Client, settings: Settings, engine: AsyncEngine, ext: str, lines: Any, **kw: Any
) -> Any:
    handle = await place_order(engine, client, settings, ext, lines, payment="captured", **kw)
    snap = await until(handle, lambda s: bool(s.shipments) and s.status in ("allocated", "in_fulfillment"))
    for shipment in snap.shipments:
        await fulfil(handle, shipment.id)
    await until(handle, lambda s: s.status == "completed")
    return handle


async def _received(engine: AsyncEngine, order_id: str, at: datetime) -> None:
    await write(engine, "UPDATE sales_order SET created_at = :at WHERE id = :o", at=at, o=order_id)


async def _shipped(engine: AsyncEngine, shipment_id: str, at: datetime) -> None:
    await write(engine, "UPDATE shipment SET shipped_at = :at WHERE id = :s", at=at, s=shipment_id)


async def orders(engine: AsyncEngine, client: Client, settings: Settings) -> None:
    await stocked_shop(engine)
    a = await _ship_all(client, settings, engine, "A", [("TEE", 2, 2000)])
    b = await _ship_all(client, settings, engine, "B", [("TEE", 1, 2000), ("MUG", 1, 1500)])
    c = await _ship_all(client, settings, engine, "C", [("TEE", 1, 2000)])
    d = await place_order(engine, client, settings, "D", [("MUG", 12, 1500)], payment="captured")
    await until(d, lambda s: any(ln.backordered == 3 for ln in s.lines))
    e = await _ship_all(client, settings, engine, "E", [("TEE", 1, 2000)], channel="marketplace")
    for handle, received in ((a, day(0)), (b, day(1)), (c, day(2)), (d, day(3)), (e, day(4))):
        await _received(engine, handle.id, received)
    await _shipped(engine, f"{a.id}-S1", day(0) + timedelta(hours=1))
    await _shipped(engine, f"{b.id}-S1", day(1) + timedelta(hours=2))
    await _shipped(engine, f"{b.id}-S2", day(1) + timedelta(hours=5))
    await _shipped(engine, f"{c.id}-S1", day(5))
    await _shipped(engine, f"{e.id}-S1", day(4) + timedelta(minutes=30))
    await write(
        engine, "UPDATE order_line SET backordered_since = :at WHERE order_id = :o", at=day(3), o=d.id
    )


# -- returns, cycle counts and purchase orders (`further`) ---------------------------------
#
# Played after `orders`, over the API as a channel and the warehouse do (returns, counts) and
# through the PO workflow (purchasing); the moments are written afterwards as above.
#
# Returns (the return workflow receives, inspects and settles them):
# - R1 (web) of A: TEE 1, wrong_size, refund; created day 6, received day 8, inspected new and
#   restocked, refunded day 8 + 2 h: 7,200 s to refund.
# - R2 (marketplace) of E: TEE 1, defective, store credit; created day 7, received day 7.5,
#   inspected defective and scrapped, credited day 9.5: 172,800 s. E is no longer perfect.
# - R3 (web) of B: MUG 1, changed_mind, cancelled before anything arrived: counts nowhere.
# Cycle counts (submitted now; tolerance 2 units and 5,000, TEE's cost 1,000):
# - K1 at STORE-SF (20 TEE received there for it): TEE 20 counted 20, MUG 0 counted 0: exact.
# - K2 at DC-EAST: TEE 5 (10 − A 2 − B 1 − C 1 − E 1) counted 4: −1, within tolerance.
# - K3 at STORE-SF: TEE 20 counted 15: −5, over tolerance (waits for an approver).
# Purchase orders to DC-WEST, sent day 6 (ACME, and SLOWCO; BAG is inspected), each receipt
# written `dock` before its first move into sellable and the PO due `due` after the receipt:
# - PA ACME TEE 10, received 10: on time in full; dock 1 h.
# - PB SLOWCO TEE 6, received 6 a day after it was due: late; dock 3 h.
# - PC ACME TEE 8, received 5 (short), due an hour after that receipt, so past due now; dock 2 h.
# - PD ACME BAG 4, received 4 into quarantine, QC passes 4: on time in full; dock 6 h to the pass.
# - PE ACME BAG 2, received 2, not inspected yet: on time in full (quarantine is received), and
#   waiting: nothing sellable.
RETURNS = {  # number -> (created, parcel received, settled) days
    "R1": (6.0, 8.0, 8.0 + 2 / 24),
    "R2": (7.0, 7.5, 9.5),
    "R3": (6.0, None, None),
}
POS = {  # number -> (supplier, sku, ordered, received, dock seconds, due seconds after receipt)
    "PA": ("ACME", "TEE", 10, 10, HOUR, 86_400.0),
    "PB": ("SLOWCO", "TEE", 6, 6, 3 * HOUR, -86_400.0),
    "PC": ("ACME", "TEE", 8, 5, 2 * HOUR, HOUR),
    "PD": ("ACME", "BAG", 4, 4, 6 * HOUR, 86_400.0),
    "PE": ("ACME", "BAG", 2, 2, None, 86_400.0),
}


async def further(
    api: httpx.AsyncClient, engine: AsyncEngine, client: Client, settings: Settings, keys: dict[str, Headers]
) -> None:
    """Counts, returns and purchase orders after `orders` (keys: web, marketplace, warehouse, admin)."""
    await _counts(api, engine, keys["warehouse"])
    await _returns(api, keys)
    for number, (created, received, settled) in RETURNS.items():
        await write(
            engine,
            "UPDATE sales_return SET created_at = :c, received_at = :r, settled_at = :s WHERE number = :n",
            c=day(created),
            r=None if received is None else day(received),
            s=None if settled is None else day(settled),
            n=number,
        )
    await _purchasing(engine, client, settings)


async def _counts(api: httpx.AsyncClient, engine: AsyncEngine, warehouse: Headers) -> None:
    await receive(engine, "TEE", "STORE-SF", 20)
    counts = (
        ("K1", "STORE-SF", {"TEE": 20, "MUG": 0}, "posted"),
        ("K2", "DC-EAST", {"TEE": 4}, "posted"),
        ("K3", "STORE-SF", {"TEE": 15}, "awaiting_approval"),
    )
    for number, location, counted, status in counts:
        body = {"id": number, "location": location, "skus": list(counted)}
        opened = await api.post("/v1/cycle-counts", json=body, headers=warehouse)
        assert opened.status_code == 202, opened.text
        lines = [{"sku": sku, "counted": n} for sku, n in counted.items()]
        submitted = await api.post(
            f"/v1/cycle-counts/{number}/submit", json={"lines": lines}, headers=warehouse
        )
        assert submitted.json()["status"] == status, submitted.text


async def _returns(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    admin, warehouse = keys["admin"], keys["warehouse"]
    asked = (
        ("R1", "web", "A", ("TEE", "wrong_size"), "refund", ("new", "restock")),
        ("R2", "marketplace", "E", ("TEE", "defective"), "store_credit", ("defective", "scrap")),
        ("R3", "web", "B", ("MUG", "changed_mind"), "refund", None),
    )
    for number, channel, order, (sku, reason), outcome, inspected in asked:
        body = rma.return_body(number, order_workflow_id(channel, order), [(sku, 1, reason)], outcome=outcome)
        created = await rma.create_return(api, keys[channel], body)
        assert created.status_code == 202, created.text
        await rma.until_return(api, admin, number, lambda r: r["status"] == "in_transit")
        if inspected is None:
            cancelled = await rma.act(api, keys[channel], number, "cancel", {"reason": "kept it"})
            assert cancelled.status_code == 200, cancelled.text
            continue
        got = await rma.act(api, warehouse, number, "receive", rma.receipt("DC-EAST", (sku, 1)))
        assert got.status_code == 200, got.text
        got = await rma.act(api, warehouse, number, "inspect", rma.inspection((sku, 1, *inspected)))
        assert got.status_code == 200, got.text
        await rma.until_return(api, admin, number, lambda r: r["status"] == "completed")


async def _purchasing(engine: AsyncEngine, client: Client, settings: Settings) -> None:
    async with engine.begin() as conn:
        await add_sku(conn, "BAG", unit_cost=300)
    for supplier in ("ACME", "SLOWCO"):
        await add_supplier(engine, supplier)
    await add_item(engine, "TEE", 1000)
    await add_item(engine, "TEE", 1000, supplier="SLOWCO")
    await add_item(engine, "BAG", 300, inspect=True)
    for number, (supplier, sku, ordered, received, _, _) in POS.items():
        po = await place_po(
            engine,
            client,
            settings,
            number,
            [(sku, ordered, 1000 if sku == "TEE" else 300)],
            location="DC-WEST",
            supplier=supplier,
        )
        await po_when(po, lambda s: s.status == "sent")
        await po.execute_update(PO.receive, Receipt(f"G-{number}", [ReceiptLine(sku, received)]))
        if number == "PD":
            await po.execute_update(PO.inspect, QcRequest([QcLine(sku, received, "pass")]))
            await po_when(po, lambda s: all(ln.quarantined == 0 for ln in s.lines))
    for number, (_, _, _, _, dock, due) in POS.items():
        # The receipt `dock` before the first move into sellable (PE: an hour before its
        # quarantine move), then the PO sent on day 6 and due `due` after the receipt.
        status, before = ("quarantine", HOUR) if dock is None else ("sellable", dock)
        await write(
            engine,
            "UPDATE po_receipt SET received_at = (SELECT min(m.created_at) FROM stock_move m"
            " WHERE m.ref = 'po-' || :n AND m.to_status = :st) - make_interval(secs => :b) WHERE po_number = :n",
            n=number,
            st=status,
            b=before,
        )
        await write(
            engine,
            "UPDATE purchase_order SET sent_at = :sent, expected_at = (SELECT received_at FROM po_receipt"
            " WHERE po_number = :n) + make_interval(secs => :due) WHERE number = :n",
            sent=day(6),
            n=number,
            due=due,
        )
