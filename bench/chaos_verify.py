"""After the chaos bench's load (and its settling, bench/chaos_settle.py): count what was lost,
doubled, oversold, drifted or stuck (bench/chaos.py lists what each means; the returns'
checks are bench/chaos_returns.py's)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import psycopg

from bench.chaos_load import Chaos
from bench.chaos_purchasing import Dock
from bench.chaos_report import Placed, Report
from bench.chaos_returns import ReturnsDesk
from bench.chaos_setup import EXPECTED_WAITS, FINAL, RETURNED
from bench.chaos_stack import describe_workflows
from client import Order
from domain.orders import PricedLine, shipment_charge


def verify(
    chaos: Chaos,
    report: Report,
    unsettled: list[Order],
    *sides: Dock | ReturnsDesk,
) -> None:
    """Lost, doubled, stuck and waiting orders (and each side's: the dock's receipts and the
    desk's returns, whose received and restocked units count as stocked), then the stock."""
    with chaos.client() as admin:
        orders = {o.id: o for o in chaos.orders(admin)}
    workflows = asyncio.run(describe_workflows(chaos.stack.temporal_address, [p.id for p in chaos.placed]))
    stuck: set[str] = set()
    waiting: Counter[str] = Counter()
    shipped_units: Counter[str] = Counter()
    reserved_units: Counter[str] = Counter()
    for p in chaos.placed:
        o, wf = orders.get(p.id), workflows.get(p.id)
        if o is None or wf is None:
            report.lost += 1
            report.problems.append(f"lost {p.id}: {'no order row' if o is None else 'no workflow'}")
            continue
        _count_status(report, waiting, o)
        if (o.status in FINAL) != (wf == "COMPLETED") or wf not in (
            "COMPLETED",
            "RUNNING",
        ):
            stuck.add(p.id)
            why = last_failure(chaos, p.id)
            report.stuck_orders.append({"id": p.id, "status": o.status, "workflow": wf, "why": why})
            report.problems.append(
                f"stuck {p.id}: order {o.status} but workflow {wf}" + (f" ({why})" if why else "")
            )
        for ln in o.lines:
            shipped_units[ln.sku] += ln.shipped
            reserved_units[ln.sku] += ln.reserved
        if twice := doubled(o, p):
            report.doubled += 1
            report.problems.append(f"doubled {p.id}: {'; '.join(twice)}")
    _not_settled_in_time(report, unsettled, orders, workflows, stuck)
    for sid, n in chaos.ship_oks.items():
        if n > 1:
            report.doubled += 1
            report.problems.append(f"doubled {sid}: /ship answered 200 {n} times")
    report.stuck += len(stuck)
    report.waiting = dict(sorted(waiting.items()))
    extra = sorted(set(orders) - {p.id for p in chaos.placed})
    if extra:  # an order the API took but never confirmed to its channel
        report.problems.append(f"{len(extra)} order rows no client was told about: {extra[:5]}")
    for side in sides:
        side.verify(report)
    verify_stock(chaos, report, shipped_units, reserved_units)


def _count_status(report: Report, waiting: Counter[str], o: Order) -> None:
    if o.status in ("completed", *RETURNED):  # a returned order was completed first
        report.completed += 1
    elif o.status == "cancelled":
        report.cancelled += 1
    elif settled(o):
        waiting[o.status if o.status in EXPECTED_WAITS else f"{o.status} (rest backordered)"] += 1


def _not_settled_in_time(
    report: Report,
    unsettled: list[Order],
    orders: dict[str, Order],
    workflows: dict[str, str],
    stuck: set[str],
) -> None:
    for u in unsettled:
        o = orders.get(u.id)
        if o is None or settled(o) or u.id in stuck:
            continue
        stuck.add(u.id)
        report.stuck_orders.append(
            {
                "id": u.id,
                "status": o.status,
                "workflow": workflows.get(u.id, "-"),
                "why": "not settled: nothing moved",
            }
        )
        report.problems.append(f"stuck {u.id}: {o.status} {[(s.id[-3:], s.status) for s in o.shipments]}")


def last_failure(chaos: Chaos, workflow_id: str) -> str:
    """The last activity failure the worker logged for this workflow, if any."""
    last = ""
    for line in chaos.stack.stderr().splitlines():
        if workflow_id in line and "Completing activity as failed" in line:
            m = re.findall(r"(\w+(?:Error|Shortage)\w*: [^\\]{0,160})", line)
            last = m[-1] if m else "an activity failed"
    return f"last activity failure: {last}" if last else ""


def verify_stock(chaos: Chaos, report: Report, shipped: Counter[str], reserved: Counter[str]) -> None:
    with psycopg.connect(chaos.stack.database_url, connect_timeout=10) as conn:
        on_hand: dict[str, Any] = dict(
            conn.execute(
                "SELECT sku, sum(qty) FROM stock_balance WHERE NOT is_virtual AND status = 'sellable' GROUP BY sku"
            ).fetchall()
        )
        held: dict[str, Any] = dict(
            conn.execute(
                "SELECT sku, sum(reserved) FROM stock_balance WHERE NOT is_virtual GROUP BY sku"
            ).fetchall()
        )
        bad = conn.execute(
            "SELECT sku, location, status, qty, reserved FROM stock_balance "
            "WHERE NOT is_virtual AND (qty < 0 OR reserved < 0 OR reserved > qty)"
        ).fetchall()
    for row in bad:
        report.oversold += 1
        report.problems.append(f"oversold: balance {row}")
    for sku in sorted(set(chaos.stocked) | set(shipped)):
        stocked, out, res = chaos.stocked[sku], shipped[sku], reserved[sku]
        have, holds = int(on_hand.get(sku) or 0), int(held.get(sku) or 0)
        report.stock[sku] = {
            "stocked": stocked,
            "shipped": out,
            "reserved": res,
            "on_hand": have,
            "held_in_balances": holds,
        }
        if out + res > stocked:
            report.oversold += out + res - stocked
            report.problems.append(f"oversold {sku}: shipped {out} + reserved {res} > stocked {stocked}")
        if have != stocked - out:
            report.drift += abs(stocked - out - have)
            report.problems.append(f"drift {sku}: on hand {have} != stocked {stocked} - shipped {out}")
        if holds != res:
            report.drift += abs(holds - res)
            report.problems.append(f"drift {sku}: balances hold {held.get(sku)} reserved, order lines {res}")


def open_units(o: Order) -> int:
    return sum(ln.qty - ln.shipped - ln.cancelled for ln in o.lines)


def settled(o: Order) -> bool:
    """Final, or waiting for something outside the warehouse and the worker (stock, a person)."""
    if o.status in FINAL or o.status in EXPECTED_WAITS:
        return True
    busy = any(s.status in ("allocated", "picked", "packed", "requested") for s in o.shipments)
    backordered = sum(ln.backordered for ln in o.lines)
    return o.status == "partially_shipped" and not busy and backordered == open_units(o) > 0


def doubled(o: Order, p: Placed) -> list[str]:
    """What says a unit, a parcel or money went out twice (or the books disagree with the parcels)."""
    out = []
    shipped_events = [e for e in o.timeline if e.event == "shipped"]
    per_shipment = Counter(e.detail.get("shipment") for e in shipped_events)
    shipped = [s for s in o.shipments if s.status == "shipped"]
    out += [f"shipment {sid} has {n} shipped events" for sid, n in per_shipment.items() if n > 1]
    if len(shipped_events) != len(shipped):
        out.append(f"{len(shipped_events)} shipped events for {len(shipped)} shipped shipments")
    in_parcels: Counter[str] = Counter()
    for s in shipped:
        for sl in s.lines:
            in_parcels[sl.line] += sl.qty
    for ln in o.lines:
        if ln.shipped + ln.cancelled > ln.qty or ln.shipped < 0:
            out.append(f"line {ln.line} {ln.sku}: qty {ln.qty} shipped {ln.shipped} cancelled {ln.cancelled}")
        if ln.shipped != in_parcels[ln.line]:
            out.append(
                f"line {ln.line} {ln.sku}: shipped {ln.shipped} but parcels carry {in_parcels[ln.line]}"
            )
    ordered = [(ln.sku, ln.qty, ln.unit_price) for ln in o.lines]
    if ordered != p.lines:
        out.append(f"lines {ordered} != ordered {p.lines}")
    return out + _captured_twice(o)


def _captured_twice(o: Order) -> list[str]:
    priced = [PricedLine(ln.line, ln.qty, ln.unit_price) for ln in o.lines]
    units = {ln.line: ln.shipped for ln in o.lines if ln.shipped}
    a = o.amounts
    expected = shipment_charge(priced, units, a.shipping, a.tax, first_shipment=True).total if units else 0
    if o.payment.captured != expected:
        return [f"captured {o.payment.captured} != shipped part's total {expected}"]
    return []
