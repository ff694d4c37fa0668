"""The returns of the demo: one web order shipped through the warehouse routes (pick, pack,
ship), then three returns of it, each where a person finds it: one waiting for an approver
(a final-sale SKU is not returnable: `return_approval`), one in transit (an exchange whose new
order's units are held from authorization), one received and waiting for inspection. Each
step is taken only if the order or the return has not taken it yet, so a second load (or one
after a stop half-way) adds nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from cli.demo_base import SETTLE_PAUSE, SETTLE_POLLS, call, demo_order, missing

RETURN_ORDER = demo_order(
    "DEMO-1005", "web", [("TEE-1", 2, 2500), ("HOODIE-1", 1, 6500), ("CANDLE-1", 1, 1800)]
)
ORDER_ID = f"order-web-{RETURN_ORDER['external_id']}"
RETURNS: list[dict[str, Any]] = [
    {"number": "DEMO-RMA-1", "order": ORDER_ID, "outcome": "refund",
     "lines": [{"sku": "CANDLE-1", "qty": 1, "reason": "changed_mind"}]},  # final sale: an approver decides
    {"number": "DEMO-RMA-2", "order": ORDER_ID, "outcome": "exchange",
     "lines": [{"sku": "HOODIE-1", "qty": 1, "reason": "wrong_size"}],
     "exchange_lines": [{"sku": "TEE-1", "qty": 2, "unit_price": 2500}]},  # in transit, two tees held
    {"number": "DEMO-RMA-3", "order": ORDER_ID, "outcome": "refund",
     "lines": [{"sku": "TEE-1", "qty": 1, "reason": "changed_mind"}]},  # received: waits for inspection
]  # fmt: skip # kept aligned: one demo record a row, its fields read across
RECEIVED = "DEMO-RMA-3"  # the one whose parcel the warehouse has taken in
# One box for the whole order (well within the ground service's limits).
BOX = {"weight_g": 2500, "length_mm": 500, "width_mm": 400, "height_mm": 200}


def load_returns(http: httpx.Client, say: Callable[[str], None]) -> None:
    """The shipped order, its three returns, and one line saying where each is now."""
    r = call(http, "GET", "/v1/returns", params={"limit": "1"}, optional=True)
    if missing(r):
        say(f"returns skipped (GET /v1/returns answered {r.status_code})")
        return
    order = _shipped(http)
    here = _shipped_from(order)
    for ret in RETURNS:
        call(http, "POST", "/v1/returns", ret, key=f"demo-return-{ret['number']}")
    received = _settled(http, RECEIVED, lambda x: x["status"] != "requested")
    if received["status"] == "in_transit":
        body = {"location": here, "lines": [{"sku": ln["sku"], "qty": ln["qty"]} for ln in received["lines"]]}
        call(http, "POST", f"/v1/returns/{RECEIVED}/receive", body, key=f"demo-return-{RECEIVED}-receive")
    states = [_return_state(http, str(ret["number"]), here) for ret in RETURNS]
    status = call(http, "GET", f"/v1/orders/{ORDER_ID}").json()["status"]
    say(f"returns of {RETURN_ORDER['external_id']} ({status}): " + ", ".join(states))


def _shipped(http: httpx.Client) -> dict[str, Any]:
    """The return order, placed if new, once each of its shipments is picked, packed and
    shipped (each step only from the state before it)."""
    key = f"demo-order-{RETURN_ORDER['external_id']}"
    call(http, "POST", "/v1/orders", RETURN_ORDER, key=key)
    order: dict[str, Any] = {}
    for _ in range(SETTLE_POLLS * 3):
        order = call(http, "GET", f"/v1/orders/{ORDER_ID}").json()
        if order["shipments"] and order["status"] not in ("received", "on_hold"):
            break
        time.sleep(SETTLE_PAUSE)
    else:
        raise RuntimeError(f"demo data: order {ORDER_ID} stayed {order.get('status')} (no shipment)")
    for shipment in order["shipments"]:
        _ship(http, shipment)
    shipped: dict[str, Any] = call(http, "GET", f"/v1/orders/{ORDER_ID}").json()
    return shipped


def _ship(http: httpx.Client, shipment: dict[str, Any]) -> None:
    path, status = f"/v1/shipments/{shipment['id']}", shipment["status"]
    units: dict[str, int] = {}
    for ln in shipment["lines"]:
        units[ln["sku"]] = units.get(ln["sku"], 0) + ln["qty"]
    lines = [{"sku": sku, "qty": qty} for sku, qty in units.items()]
    key = f"demo-{shipment['id']}"
    if status == "allocated":
        status = call(http, "POST", f"{path}/pick", {"lines": lines}, key=f"{key}-pick").json()["status"]
    if status == "picked":
        body = {"packages": [{**BOX, "lines": lines}]}
        status = call(http, "POST", f"{path}/pack", body, key=f"{key}-pack").json()["status"]
    if status == "packed":
        call(http, "POST", f"{path}/ship", {"carrier": "UPS", "tracking": f"1Z{key[-8:]}"}, key=f"{key}-ship")


def _shipped_from(order: dict[str, Any]) -> str:
    return str(next(s["location"] for s in order["shipments"] if s["kind"] == "stock"))


def _settled(http: httpx.Client, number: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The return once `ok` holds of it (its workflow takes it a moment after the create answers)."""
    ret: dict[str, Any] = {}
    for _ in range(SETTLE_POLLS):
        ret = call(http, "GET", f"/v1/returns/{number}").json()
        if ok(ret):
            break
        time.sleep(SETTLE_PAUSE)
    return ret


def _waits(ret: dict[str, Any]) -> list[str]:
    return [h["kind"] for h in ret.get("holds", []) if h.get("status", "open") == "open"]


def _held(ret: dict[str, Any]) -> dict[str, Any] | None:
    """The timeline event of the exchange's units held (or not: no location had them all)."""
    events = [e for e in ret.get("timeline", []) if e["event"] in ("units_held", "units_not_held")]
    return events[0] if events else None


def _return_state(http: httpx.Client, number: str, here: str) -> str:
    """Where the return is now, read back: the queue it waits in (opened a moment after the
    create answers), its exchange's held units, what waits for inspection; else its status."""

    def settled(x: dict[str, Any]) -> bool:
        if x["status"] == "requested":
            return bool(_waits(x))
        return x["outcome"] != "exchange" or x["status"] != "in_transit" or _held(x) is not None

    ret = _settled(http, number, settled)
    status, waits = ret["status"], _waits(ret)
    if waits:
        why = "; ".join(str(r["message"]).split(": ", 1)[-1] for r in ret.get("approval_reasons", []))
        return f"{number} {status} in the {' and '.join(waits)} queue ({why})"
    held = _held(ret) if status == "in_transit" else None
    if held is not None and held["event"] == "units_held":
        units = ", ".join(f"{ln['qty']} × {ln['sku']}" for ln in ret["new_order_lines"])
        return f"{number} in_transit (an exchange: {units} held at {held['detail']['location']})"
    if status == "received":
        units = ", ".join(
            f"{ln['received'] - ln['inspected']} × {ln['sku']}" for ln in ret["lines"] if ln["received"]
        )
        return f"{number} received ({units} at {here}, waiting for inspection)"
    return f"{number} {status}"
