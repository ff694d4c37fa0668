"""Demo data for `make run`, loaded through the public API as a client would, once: every
call is an idempotent create or carries an Idempotency-Key, so a second run changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

import httpx

from cli.demo_base import NYC, SETTLE_PAUSE, SETTLE_POLLS, call, demo_order, missing
from cli.demo_returns import load_returns

LOCATIONS = [
    {"code": "DC-EAST", "name": "East DC (Newark)", "type": "dc", "lat": 40.73, "lon": -74.17, "ship_cost": 450, "priority": 1},
    {"code": "DC-WEST", "name": "West DC (Ontario, CA)", "type": "dc", "lat": 34.06, "lon": -117.65, "ship_cost": 380, "priority": 2},
    {"code": "STORE-SF", "name": "San Francisco store", "type": "store", "lat": 37.79, "lon": -122.41, "ship_cost": 900, "priority": 3},
    {"code": "DROP-ACME", "name": "ACME furniture (drop-ship)", "type": "dropship", "ship_cost": 0, "priority": 9,
     "supplier": "ACME"},
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
SKUS = [
    {"code": "TEE-1", "name": "Organic tee", "unit_cost": 600, "price": 2500},
    {"code": "HOODIE-1", "name": "Heavy hoodie", "unit_cost": 1800, "price": 6500},
    {"code": "MUG-1", "name": "Stoneware mug", "unit_cost": 350, "price": 1600},
    {"code": "BOOT-1", "name": "Leather boot", "unit_cost": 4000, "price": 14900, "returnable_days": 60},
    {"code": "COFFEE-1", "name": "Single-origin coffee 250 g", "unit_cost": 500, "price": 1400, "tracking": "lot",
     "returnable_days": 0},
    {"code": "GIFT-SET-1", "name": "Tee + two mugs gift set", "kind": "kit", "price": 5200,
     "components": [{"sku": "TEE-1", "qty": 1}, {"sku": "MUG-1", "qty": 2}]},
    {"code": "SOFA-1", "name": "Three-seat sofa (drop-ship)", "unit_cost": 42000, "price": 99000},
    {"code": "CANDLE-1", "name": "Soy candle (final sale)", "unit_cost": 300, "price": 1800, "returnable_days": 0},
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
CHANNELS = [
    {"code": "web", "name": "Web shop", "type": "web", "locations": ["DC-EAST", "DC-WEST", "STORE-SF", "DROP-ACME"],
     "sourcing_rule": "nearest"},
    {"code": "marketplace", "name": "Marketplace", "type": "marketplace", "locations": ["DC-EAST", "DC-WEST"],
     "sourcing_rule": "cheapest"},
    {"code": "b2b", "name": "Wholesale (EDI)", "type": "b2b", "locations": ["DC-EAST"], "sourcing_rule": "priority"},
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
POLICIES = [
    ("marketplace", "TEE-1", {"safety_stock": 2, "ringfence": [{"location": "DC-EAST", "qty": 5}]}),
    ("web", "BOOT-1", {"safety_stock": 1, "ringfence": []}),
]
SUPPLIERS: list[dict[str, Any]] = [
    {"code": "NORTHWIND", "name": "Northwind Apparel", "lead_time_days": 14,
     "items": [{"sku": "TEE-1", "cost": 600, "moq": 50, "order_multiple": 25},
               {"sku": "HOODIE-1", "cost": 1800, "moq": 20, "order_multiple": 10}]},
    {"code": "KILN", "name": "Kiln & Co", "lead_time_days": 21,
     "items": [{"sku": "MUG-1", "cost": 350, "moq": 48, "order_multiple": 24},
               {"sku": "COFFEE-1", "cost": 500, "moq": 20, "order_multiple": 10}]},
    {"code": "ACME", "name": "ACME Furniture", "lead_time_days": 10, "dropship": True,
     "items": [{"sku": "SOFA-1", "cost": 42000}]},
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
STOCK = [  # sku, location, units, lot, expires
    ("TEE-1", "DC-EAST", 40, "", None), ("TEE-1", "DC-WEST", 25, "", None), ("TEE-1", "STORE-SF", 6, "", None),
    ("HOODIE-1", "DC-EAST", 12, "", None), ("HOODIE-1", "DC-WEST", 3, "", None),
    ("MUG-1", "DC-EAST", 30, "", None), ("MUG-1", "DC-WEST", 10, "", None),
    ("BOOT-1", "DC-WEST", 8, "", None), ("CANDLE-1", "DC-EAST", 12, "", None),
    ("COFFEE-1", "DC-EAST", 20, "L2611", "2027-03-01T00:00:00Z"), ("COFFEE-1", "DC-EAST", 15, "L2612", "2027-05-01T00:00:00Z"),
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
_PARIS = {
    "name": "G. Hopper",
    "line1": "5 Av. Anatole France",
    "city": "Paris",
    "postal_code": "75007",
    "country": "FR",
}


# Orders that wait in each queue a person would work (and some that simply flow).
ORDERS = [
    demo_order("DEMO-1001", "web", [("TEE-1", 2, 2500), ("MUG-1", 1, 1600)]),  # allocated: pick tasks
    demo_order("DEMO-1002", "web", [("HOODIE-1", 1, 6500)],
               ship_to={**NYC, "region": "ZZ", "postal_code": "1011"}),  # address_invalid
    demo_order("DEMO-1003", "web", [("BOOT-1", 1, 14900)], pay="pending"),  # payment_pending
    demo_order("DEMO-2001", "marketplace", [("HOODIE-1", 9, 6500)], billing_address=_PARIS,
               promise="express"),  # fraud_review: high value, billing abroad, express for a new customer
    demo_order("DEMO-3001", "b2b", [("COFFEE-1", 50, 1100)]),  # 35 on hand: 15 wait for stock
    demo_order("DEMO-1004", "web", [("SOFA-1", 1, 99000)]),  # drop-shipped by ACME
]  # fmt: skip # kept aligned: one demo record a row, its fields read across

# The suppliers' terms beyond cost, MOQ and multiple (PUT /v1/suppliers/{code}/items/{sku}
# takes those from SUPPLIERS, so the supplier reads back as created): lead time, inspection.
SUPPLIER_TERMS = {
    ("NORTHWIND", "TEE-1"): {"lead_time_days": 10},
    ("NORTHWIND", "HOODIE-1"): {},
    ("KILN", "MUG-1"): {},
    ("KILN", "COFFEE-1"): {"lead_time_days": 7, "inspect": True},  # food: receipts wait for QC
    ("ACME", "SOFA-1"): {},
}
# One PO over the approval threshold (OMNIFLOW_PO_APPROVAL_THRESHOLD, default 500,000 minor
# units: 300 × 1,800 = 540,000) waits for an approver; one below it is sent, confirmed and
# received in part with damaged units, so a receipt_discrepancy waits for a person.
PURCHASE_ORDERS = [
    {"number": "DEMO-PO-1", "supplier": "NORTHWIND", "location": "DC-WEST", "lines": [{"sku": "HOODIE-1", "qty": 300}]},
    {"number": "DEMO-PO-2", "supplier": "NORTHWIND", "location": "DC-EAST", "lines": [{"sku": "TEE-1", "qty": 100}]},
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
PO_CONFIRMATION = {"lines": [{"sku": "TEE-1", "qty": 100, "promised_at": "2030-01-15T00:00:00Z"}]}
PO_RECEIPT = {"receipt": "DEMO-GRN-1", "lines": [{"sku": "TEE-1", "qty_received": 48, "qty_damaged": 2}]}
# A safety stock above what is on hand (10 mugs at DC-WEST): no shipments yet, so the reorder
# point is the safety stock and the suggestions list MUG-1 there.
REPLENISHMENT_POLICY = ("MUG-1", "DC-WEST", {"safety_stock": 24, "review_days": 14, "supplier": "KILN"})

# A transfer that arrives one unit short, so the exception queue has something to show.
TRANSFER = {"number": "DEMO-T1", "from": "DC-EAST", "to": "STORE-SF", "lines": [{"sku": "TEE-1", "qty": 4}]}


def load_demo(api_url: str, admin_key: str, out: IO[str], client: httpx.Client | None = None) -> None:
    """Load the demo data above through the HTTP API, one short line per section to `out`.
    `client` replaces the client built from `api_url` (and is left open)."""
    http = client or httpx.Client(base_url=api_url, timeout=30.0)
    http.headers["Authorization"] = f"Bearer {admin_key}"

    def say(line: str) -> None:
        print(f"demo: {line}", file=out, flush=True)

    try:
        _load(http, say)
    finally:
        if client is None:
            http.close()


def _load(http: httpx.Client, say: Callable[[str], None]) -> None:
    """Each section in turn; one the API does not have (yet) stops the load there. The
    returns come last: they ship an order of their own, after the queues above are set."""
    _load_catalog(http, say)
    if _load_stock(http, say) and _load_transfer(http, say) and _load_orders(http, say):
        _load_purchasing(http, say)
        load_returns(http, say)


def _load_catalog(http: httpx.Client, say: Callable[[str], None]) -> None:
    created = 0
    for path, items in (
        ("/v1/skus", SKUS),
        ("/v1/suppliers", SUPPLIERS),
        ("/v1/locations", LOCATIONS),
        ("/v1/channels", CHANNELS),
    ):
        for item in items:
            created += call(http, "POST", path, item).status_code == 201
    say(
        f"{len(LOCATIONS)} locations, {len(CHANNELS)} channels, {len(SKUS)} SKUs, {len(SUPPLIERS)} suppliers "
        f"({created} new)"
    )
    for channel, sku, policy in POLICIES:
        call(http, "PUT", f"/v1/channels/{channel}/policies/{sku}", policy)
    say(f"{len(POLICIES)} channel policies (safety stock, ring-fences)")


def _load_stock(http: httpx.Client, say: Callable[[str], None]) -> bool:
    """False when the API has no stock adjustments (the rest is skipped)."""
    for sku, location, qty, lot, expires in STOCK:
        body: dict[str, Any] = {
            "sku": sku,
            "location": location,
            "status": "sellable",
            "delta": qty,
            "reason": "initial",
            "lot": lot,
        }
        if expires:
            body["expires_at"] = expires
        key = f"demo-stock-{sku}-{location}-{lot}"  # stable: a second run replays, adds nothing
        r = call(http, "POST", "/v1/inventory/adjustments", body, key=key, optional=True)
        if missing(r):
            say(f"stock and transfer skipped (POST /v1/inventory/adjustments answered {r.status_code})")
            return False
    say(f"{len(STOCK)} stock rows ({sum(row[2] for row in STOCK)} units)")
    return True


def _load_transfer(http: httpx.Client, say: Callable[[str], None]) -> bool:
    """False when the API has no transfers (the orders are skipped)."""
    number = TRANSFER["number"]
    r = call(http, "POST", "/v1/transfers", TRANSFER, optional=True)
    if missing(r):
        say(f"transfer skipped (POST /v1/transfers answered {r.status_code})")
        return False
    status = r.json()["status"]
    if status == "requested":  # each step only once, even if an earlier load stopped half-way
        status = call(http, "POST", f"/v1/transfers/{number}/ship", {"carrier": "demo"}).json()["status"]
    if status == "shipped":
        call(
            http, "POST", f"/v1/transfers/{number}/receive", {"lines": [{"sku": "TEE-1", "qty_received": 3}]}
        )
    say(f"transfer {number} {_transfer_state(http, str(number))}")
    return True


def _transfer_state(http: httpx.Client, number: str) -> str:
    """What the transfer is now: waiting in a queue, or how it ended (after a restart its
    discrepancy may have been decided long ago)."""
    params, status = {"subject_type": "transfer", "subject_id": number, "status": "open"}, ""
    for _ in range(SETTLE_POLLS):
        waiting = call(http, "GET", "/v1/exceptions", params=params).json()["items"]
        if waiting:
            kinds = " and ".join(sorted({e["kind"] for e in waiting}))
            return f"arrived one unit short and waits in the {kinds} queue"
        status = call(http, "GET", f"/v1/transfers/{number}").json()["status"]
        if status not in ("requested", "shipped"):
            return f"is {status} (nothing waits for a person)"
        time.sleep(SETTLE_PAUSE)
    return f"is {status}"


def _load_orders(http: httpx.Client, say: Callable[[str], None]) -> bool:
    """False when the API has no orders (purchasing is skipped)."""
    placed = 0
    for order in ORDERS:
        r = call(http, "POST", "/v1/orders", order, key=f"demo-order-{order['external_id']}", optional=True)
        if missing(r):
            say(f"orders skipped (POST /v1/orders answered {r.status_code})")
            return False
        placed += 1
    states = [_order_state(http, f"order-{o['channel']}-{o['external_id']}") for o in ORDERS]
    say(
        f"{placed} orders: "
        + ", ".join(f"{o['external_id']} {state}" for o, state in zip(ORDERS, states, strict=True))
    )
    return True


def _order_state(http: httpx.Client, order_id: str) -> str:
    """What the order is now, read back (the create's answer may be a replay of the first
    load's): the queue it waits in, else its status. Waits a little for a new order's
    workflow to take it past `received`."""
    order: dict[str, Any] = {}
    for _ in range(SETTLE_POLLS):
        order = call(http, "GET", f"/v1/orders/{order_id}").json()
        waiting = [h["kind"] for h in order.get("holds", []) if h["status"] == "open"]
        if waiting:
            return "waits in " + " and ".join(waiting)
        if order["status"] not in ("received", "on_hold"):
            return str(order["status"])
        time.sleep(SETTLE_PAUSE)
    return str(order.get("status", "unknown"))


def _load_purchasing(http: httpx.Client, say: Callable[[str], None]) -> None:
    """Supplier terms, the two POs and a replenishment policy; each PO step is taken only if
    the PO has not taken it yet, so a second load (or one after a stop half-way) adds nothing."""
    items = {(s["code"], i["sku"]): i for s in SUPPLIERS for i in s["items"]}
    for (supplier, sku), extra in SUPPLIER_TERMS.items():
        terms = {k: v for k, v in items[(supplier, sku)].items() if k != "sku"} | extra
        r = call(http, "PUT", f"/v1/suppliers/{supplier}/items/{sku}", terms, optional=True)
        if missing(r):
            say(f"purchasing skipped (PUT /v1/suppliers/…/items/… answered {r.status_code})")
            return
    say(f"{len(SUPPLIER_TERMS)} supplier items with their terms (cost, MOQ, multiple, lead time, inspection)")
    waiting, partial = (_placed(http, po) for po in PURCHASE_ORDERS)
    if partial["status"] == "sent":
        partial = call(
            http, "POST", f"/v1/purchase-orders/{partial['number']}/confirm", PO_CONFIRMATION
        ).json()
    if partial["status"] in ("confirmed", "partially_received") and not any(
        r["receipt_number"] == PO_RECEIPT["receipt"] for r in partial["receipts"]
    ):
        path = f"/v1/purchase-orders/{partial['number']}/receipts"
        partial = call(http, "POST", path, PO_RECEIPT, key=f"demo-{PO_RECEIPT['receipt']}").json()
    say(
        f"purchase orders: {waiting['number']} {waiting['status']}{_po_waits(waiting, ' (over the approval threshold)')}"
        f", {partial['number']} {partial['status']}"
        f"{_po_waits(_received_settled(http, partial), ' with 2 damaged units in the receipt_discrepancy queue')}"
    )
    sku, location, policy = REPLENISHMENT_POLICY
    call(http, "PUT", f"/v1/replenishment/policies/{sku}/{location}", policy)
    say(f"replenishment: {sku} at {location} below its reorder point (safety stock {policy['safety_stock']})")


def _received_settled(http: httpx.Client, po: dict[str, Any]) -> dict[str, Any]:
    """The PO once its receipt's discrepancy is in a queue or was decided: the receipt's answer
    comes before the workflow opens the receipt_discrepancy exception."""
    number = po["number"]
    for _ in range(SETTLE_POLLS):
        if any(h.get("status", "open") == "open" for h in po.get("holds", [])):
            return po
        params = {"subject_type": "purchase_order", "subject_id": number, "status": "resolved"}
        if call(http, "GET", "/v1/exceptions", params=params).json()["items"]:
            return po
        time.sleep(SETTLE_PAUSE)
        po = call(http, "GET", f"/v1/purchase-orders/{number}").json()
    return po


def _po_waits(po: dict[str, Any], why: str) -> str:
    """`why` while the PO waits for a person; after a restart it may not any more."""
    if not any(h.get("status", "open") == "open" for h in po.get("holds", [])):
        return " (nothing waits for a person)"
    return why


def _placed(http: httpx.Client, po: dict[str, Any]) -> dict[str, Any]:
    """The PO, created if new (the number is its business key: the same body again answers the
    PO), once its workflow has recorded it (sent, or waiting for approval)."""
    call(http, "POST", "/v1/purchase-orders", po)
    for _ in range(300):
        read: dict[str, Any] = call(http, "GET", f"/v1/purchase-orders/{po['number']}").json()
        if read["status"] != "draft" and (read["status"] != "awaiting_approval" or read["holds"]):
            return read
        time.sleep(0.05)
    raise RuntimeError(f"demo data: purchase order {po['number']} stayed {read['status']}")
