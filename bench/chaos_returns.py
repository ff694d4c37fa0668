"""The chaos bench's returns desk (bench/chaos.py describes the run): while the orders flow
and the worker is killed, every `return_every` seconds a completed order of tees and mugs
gets a return through the client, as its channel asks for one (a refund, or every third a
store credit; reasons with and without a fee), and the warehouse receives the parcel (in two
receipts when two units come back) and inspects it, restocking or scrapping. Every write
carries its own Idempotency-Key and is retried with it until the API answers; a receipt or
an inspection retried after a 503 whose first try went through is refused (nothing more is
due), which the desk takes as done once the return shows it. Afterwards, per return:

- stuck: not `completed` when the orders have settled;
- doubled: a receipt or an inspection that moved more units than the desk sent; more than
  one `refund` (or `store_credit_issued`) entry for its order, or their sum ≠ the return's
  `refunded` (`store_credit`); the payment refunded beyond what it captured, or ≠ the
  return's refund; the customer's store credit ≠ the return's;
- what was restocked counts as stocked, so bench/chaos_verify.py's stock checks (on hand =
  stocked − shipped) see a unit restocked twice; the `returns` bucket ends empty."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import psycopg

from client import (
    ApiError,
    InspectedLine,
    NewReturn,
    NewReturnLine,
    OmniflowClient,
    Return,
    ReturnedLine,
)
from client import operations_returns as rma
from client.request import Request

if TYPE_CHECKING:
    from bench.chaos_load import Chaos
    from bench.chaos_report import Report

RETURNABLE = ("TEE", "MUG")  # plenty of stock: a restock changes no order's fate
PART_GAP = 1.0  # seconds between a return's steps: each spans a few seconds of the chaos
REASONS = ("wrong_size", "changed_mind", "defective")  # no fee, a flat fee, a defect
DONE = ("completed", "rejected", "cancelled", "expired")
LEDGER = (
    "SELECT e.ref, e.event, count(DISTINCT e.id), sum(l.credit) FROM journal_entry e"
    " JOIN journal_line l ON l.entry_id = e.id"
    " WHERE e.event IN ('refund', 'store_credit_issued') AND e.ref = ANY(%s) GROUP BY e.ref, e.event"
)
PAYMENTS = "SELECT ref, sum(captured), sum(refunded) FROM payment WHERE ref = ANY(%s) GROUP BY ref"
CREDIT = (
    "SELECT customer_id, sum(amount) FROM store_credit_entry WHERE customer_id = ANY(%s) GROUP BY customer_id"
)
IN_RETURNS = "SELECT coalesce(sum(qty), 0) FROM stock_balance WHERE status = 'returns' AND NOT is_virtual"


@dataclass
class Asked:
    number: str
    order: str
    channel: str
    sku: str
    qty: int
    outcome: str
    disposition: str
    created: bool = False
    received: int = 0  # units the warehouse was told were taken
    inspected: int = 0
    answers: list[str] = field(default_factory=list)  # the refusals met on the way


@dataclass
class ReturnsDesk:
    chaos: Chaos
    asked: list[Asked] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)  # orders with a return
    doubled: list[str] = field(default_factory=list)  # a step that moved more than was sent

    def loop(self) -> None:
        every = self.chaos.cfg.return_every
        workers: list[threading.Thread] = []
        try:
            while every > 0 and not self.chaos.stop_orders.wait(every):
                asked = self.next_return(len(self.asked))
                if asked is not None:
                    self.asked.append(asked)
                    workers.append(threading.Thread(target=self.handle, args=(asked,), daemon=True))
                    workers[-1].start()
        except Exception as exc:  # a bug in this bench must not pass for a clean run
            self.chaos.thread_errors.append(f"returns desk: {type(exc).__name__}: {exc}")
        for t in workers:
            t.join()

    def next_return(self, n: int) -> Asked | None:
        """A completed order of tees and mugs without a return yet (the oldest first)."""
        with self.chaos.lock:
            candidates = [
                p
                for p in self.chaos.placed
                if p.id not in self.taken and all(sku in RETURNABLE for sku, _, _ in p.lines)
            ]
        with self.chaos.client() as admin:
            for p in candidates[:20]:
                try:
                    order = admin.get_order(p.id)
                except (ApiError, httpx.HTTPError):
                    continue
                if order.status != "completed":
                    continue
                self.taken.add(p.id)
                line = max(order.lines, key=lambda ln: ln.qty)
                return Asked(
                    number=f"{self.chaos.tag}-RMA-{n}",
                    order=p.id,
                    channel=p.channel,
                    sku=line.sku,
                    qty=min(line.qty, 2),
                    outcome="store_credit" if n % 3 == 2 else "refund",
                    disposition=("restock", "scrap")[n % 2],
                )
        return None

    def handle(self, a: Asked) -> None:
        try:
            self.create(a)
            if a.created:
                self.receive_and_inspect(a)
        except Exception as exc:
            self.chaos.thread_errors.append(f"return {a.number}: {type(exc).__name__}: {exc}")

    def create(self, a: Asked) -> None:
        reason = REASONS[int(a.number.rsplit("-", 1)[1]) % len(REASONS)]
        new = NewReturn(
            number=a.number,
            order=a.order,
            lines=[NewReturnLine(sku=a.sku, qty=a.qty, reason=reason)],
            outcome="store_credit" if a.outcome == "store_credit" else "refund",
        )
        with self.chaos.client(self.chaos.keys[a.channel], retrying=True) as channel:
            try:
                channel.send(rma.create_return(new, idempotency_key=f"create-{a.number}"))
            except (ApiError, httpx.HTTPError) as exc:
                self.problems.append(f"return {a.number} not created: {exc}"[:260])
                return
        a.created = True

    def receive_and_inspect(self, a: Asked) -> None:
        """One receipt per unit (a parcel in parts), then one inspection of them all. After
        each step the return shows exactly the units sent so far: more is a step done twice."""
        with self.chaos.client(self.chaos.keys["warehouse"], retrying=True) as warehouse:
            location = self.location(warehouse, a)
            if location is None:
                return
            for part in range(1, a.qty + 1):
                self.chaos.stop_warehouse.wait(PART_GAP)  # the parts arrive apart
                lines = [ReturnedLine(sku=a.sku, qty=1)]
                key = f"receive-{a.number}-{part}"
                op = rma.receive_return(a.number, location, lines, idempotency_key=key)
                a.received = self.step(warehouse, a, op, "received", part)
            if not a.received:
                return
            self.chaos.stop_warehouse.wait(PART_GAP)
            condition = "new" if a.disposition == "restock" else "damaged"
            inspected = InspectedLine(
                sku=a.sku,
                qty=a.received,
                condition=condition,
                disposition=a.disposition,
            )
            op = rma.inspect_return(a.number, [inspected], idempotency_key=f"inspect-{a.number}")
            a.inspected = self.step(warehouse, a, op, "inspected", a.received)

    def location(self, api: OmniflowClient, a: Asked) -> str | None:
        """Where the order shipped from (its parcel comes back there), once the return's
        workflow has authorized it."""
        while time.monotonic() < self.chaos.give_up_at:
            try:
                if api.get_return(a.number).status != "requested":
                    order = api.get_order(a.order)
                    return next(s.location for s in order.shipments if s.status == "shipped")
            except (ApiError, httpx.HTTPError):
                pass
            time.sleep(0.3)
        self.problems.append(f"return {a.number} never authorized")
        return None

    def step(self, api: OmniflowClient, a: Asked, op: Request[Return], what: str, sent: int) -> int:
        """Send a warehouse step (a refusal after retries is fine when its first try went
        through before the 503); the units the return shows `what` after it."""
        try:
            api.send(op)
        except (ApiError, httpx.HTTPError) as exc:
            a.answers.append(f"{what} {exc.status if isinstance(exc, ApiError) else type(exc).__name__}")
        try:
            got = int(getattr(api.get_return(a.number).line(a.sku), what))
        except (ApiError, httpx.HTTPError):
            return sent - 1
        if got > sent:
            self.doubled.append(f"return {a.number}: {got} units {what} after {sent} sent")
        return min(got, sent)

    # -- afterwards ------------------------------------------------------------------

    def settle(self, timeout: float) -> dict[str, Return]:
        """The returns created, once each has ended (or at the timeout)."""
        deadline = time.monotonic() + timeout
        out: dict[str, Return] = {}
        with self.chaos.client(retrying=True) as api:
            for a in (a for a in self.asked if a.created):
                while True:
                    with contextlib.suppress(ApiError, httpx.HTTPError):
                        out[a.number] = api.get_return(a.number)
                    got = out.get(a.number)
                    if (got is not None and got.status in DONE) or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
        return out

    def verify(self, report: Report, timeout: float = 30.0) -> None:
        """Every return completed, its money posted once; what was restocked counts as
        stocked (before the stock is verified); the `returns` bucket holds only what is
        received and not yet inspected."""
        rets = self.settle(timeout)
        orders = [r.order for r in rets.values()]
        with psycopg.connect(self.chaos.stack.database_url, connect_timeout=10) as conn:
            posted = {(ref, ev): (int(n), int(t)) for ref, ev, n, t in conn.execute(LEDGER, (orders,))}
            paid = {ref: (int(c), int(r)) for ref, c, r in conn.execute(PAYMENTS, (orders,))}
            customers = [r.customer_id for r in rets.values()]
            credit = {c: int(t) for c, t in conn.execute(CREDIT, (customers,))}
            row = conn.execute(IN_RETURNS).fetchone()
            in_returns = int(row[0]) if row else 0
        problems = list(self.problems) + [f"doubled {d}" for d in self.doubled]
        report.doubled += len(self.doubled)
        for a in (a for a in self.asked if a.created and a.number not in rets):
            report.lost += 1
            problems.append(f"lost return {a.number}: created (2xx) but not read back")
        waiting = 0
        for r in rets.values():
            if r.status != "completed":
                report.stuck += 1
                problems.append(
                    f"stuck return {r.number}: {r.status} {[(ln.received, ln.inspected) for ln in r.lines]}"
                )
            twice = money_twice(r, posted, paid.get(r.order, (0, 0)), credit.get(r.customer_id, 0))
            report.doubled += bool(twice)
            problems += [f"doubled return {r.number}: {t}" for t in twice]
            waiting += sum(ln.received - ln.inspected for ln in r.lines)
            with self.chaos.lock:
                for ln in r.lines:
                    self.chaos.stocked[ln.sku] += int(ln.dispositions.get("restock", 0))
        if in_returns != waiting:
            report.drift += abs(in_returns - waiting)
            problems.append(
                f"drift: {in_returns} units in the returns bucket, {waiting} received and not inspected"
            )
        report.problems += problems
        report.returns = {
            "created": len(rets),
            "not_created": sum(not a.created for a in self.asked),
            "completed": sum(r.status == "completed" for r in rets.values()),
            "refunded_total": sum(r.refunded for r in rets.values()),
            "store_credit_total": sum(r.store_credit for r in rets.values()),
            "units_restocked": sum(
                int(ln.dispositions.get("restock", 0)) for r in rets.values() for ln in r.lines
            ),
            "units_scrapped": sum(
                int(ln.dispositions.get("scrap", 0)) for r in rets.values() for ln in r.lines
            ),
            "steps_refused_after_a_retry": sum(len(a.answers) for a in self.asked),
        }


def money_twice(
    r: Return, posted: dict[tuple[str, str], tuple[int, int]], paid: tuple[int, int], credit: int
) -> list[str]:
    """What says the return's money went out twice (or not as the return says): one entry
    of its kind for the order (one return an order here), for the return's amount."""
    out = []
    refunds, credits = (
        posted.get((r.order, "refund"), (0, 0)),
        posted.get((r.order, "store_credit_issued"), (0, 0)),
    )
    want_refund = (int(r.refunded > 0), r.refunded)
    want_credit = (int(r.store_credit > 0), r.store_credit)
    if refunds != want_refund:
        out.append(f"refund entries (count, sum) {refunds} for refunded {r.refunded}")
    if credits != want_credit:
        out.append(f"store credit entries (count, sum) {credits} for store credit {r.store_credit}")
    captured, refunded = paid
    if refunded > captured or refunded != r.refunded:
        out.append(f"payment captured {captured} refunded {refunded}, the return refunded {r.refunded}")
    if credit != r.store_credit:
        out.append(f"customer {r.customer_id} has {credit} store credit, the return gave {r.store_credit}")
    if r.status == "completed" and r.outcome == "refund" and r.refunded != r.credit - r.fee:
        out.append(f"refunded {r.refunded} != credit {r.credit} - fee {r.fee}")
    if r.status == "completed" and r.outcome == "store_credit" and r.store_credit < r.credit:
        out.append(f"store credit {r.store_credit} < credit {r.credit}")
    return out
