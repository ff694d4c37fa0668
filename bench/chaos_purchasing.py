"""The chaos bench's receiving dock (bench/chaos.py describes the run): while the orders flow
and the worker is killed, a purchase order for the limited SKU every `po_every` seconds,
received in deliveries of its own, each posted once: one receipt number and one
Idempotency-Key, retried with both until the API answers (a worker down is a 503, then the
same request again). Afterwards, from each PO as the API reads it:

- lost: a delivery the dock was told was taken (a 2xx) that is not among the PO's receipts;
- doubled: a receipt number twice on a PO, or received units ≠ the sum of its distinct
  receipts (≠ what the dock delivered under those numbers);
- what the receipts brought counts as stocked, so the oversold and drift checks of
  bench/chaos_verify.py (on hand = stocked − shipped) see a receipt moved twice into stock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from bench.chaos_setup import LIMITED
from client import ApiError, NewPoLine, NewPurchaseOrder, OmniflowClient, PurchaseOrder, ReceiptLine

if TYPE_CHECKING:
    from bench.chaos_load import Chaos
    from bench.chaos_report import Report

SUPPLIER = {
    "code": "CHAOS-SUP",
    "name": "Chaos supplier",
    "lead_time_days": 3,
    "items": [{"sku": LIMITED, "cost": 4000}],
}
DELIVERIES = (2, 1, 1)  # units of each receipt of a PO: it is received in full
LOCATIONS = ("DC-EAST", "DC-WEST")


@dataclass
class Delivery:
    po: str
    receipt: str
    qty: int
    taken: bool  # the API answered 2xx
    answer: str = ""  # the last answer when not taken


@dataclass
class Dock:
    chaos: Chaos
    pos: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def setup(self) -> None:
        """The supplier of the limited SKU (the same body again is the same supplier)."""
        r = httpx.post(
            f"{self.chaos.stack.api}/v1/suppliers",
            json=SUPPLIER,
            headers=self.chaos.stack.headers,
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text

    def loop(self) -> None:
        n = 0
        try:
            while not self.chaos.stop_orders.wait(self.chaos.cfg.po_every):
                self.buy(f"{self.chaos.tag}-PO-{n}", LOCATIONS[n % len(LOCATIONS)])
                n += 1
        except Exception as exc:  # a bug in this bench must not pass for a clean run
            self.chaos.thread_errors.append(f"dock: {type(exc).__name__}: {exc}")

    def buy(self, number: str, location: str) -> None:
        line = NewPoLine(sku=LIMITED, qty=sum(DELIVERIES))
        po = NewPurchaseOrder(number=number, supplier=str(SUPPLIER["code"]), location=location, lines=[line])
        with self.chaos.client(retrying=True) as api:
            try:  # the number is the PO's business key: a create is safe to send again
                api.create_purchase_order(po)
            except (ApiError, httpx.HTTPError) as exc:
                self.problems.append(f"PO {number} not placed: {exc}"[:260])
                return
            self.pos.append(number)
            if self.sent(api, number) is None:
                self.problems.append(f"PO {number} never sent")
                return
            for i, qty in enumerate(DELIVERIES, 1):
                self.deliver(api, number, f"{number}-GRN-{i}", qty)

    def sent(self, api: OmniflowClient, number: str) -> PurchaseOrder | None:
        """The PO once its workflow has recorded and sent it (None: not before the give-up time)."""
        while time.monotonic() < self.chaos.give_up_at:
            try:
                po = api.get_purchase_order(number)
                if po.status != "draft":
                    return po
            except (ApiError, httpx.HTTPError):
                pass
            time.sleep(0.3)
        return None

    def deliver(self, api: OmniflowClient, number: str, receipt: str, qty: int) -> None:
        line = ReceiptLine(sku=LIMITED, qty_received=qty)
        try:
            api.receive_purchase_order(number, receipt, [line], idempotency_key=f"receive-{receipt}")
        except (ApiError, httpx.HTTPError) as exc:
            answer = str(exc.status) if isinstance(exc, ApiError) else type(exc).__name__
            self.deliveries.append(Delivery(number, receipt, qty, False, answer))
            return
        self.deliveries.append(Delivery(number, receipt, qty, True))

    # -- afterwards ------------------------------------------------------------------

    def verify(self, report: Report) -> None:
        """Lost and doubled receipts; what they brought counted as stocked (before the stock
        is verified)."""
        sent = {d.receipt: d for d in self.deliveries}
        units = received = 0
        with self.chaos.client(retrying=True) as api:
            for number in self.pos:
                try:
                    po = api.get_purchase_order(number)
                except (ApiError, httpx.HTTPError) as exc:
                    report.lost += 1
                    report.problems.append(f"lost PO {number}: {exc}"[:260])
                    continue
                numbers = [r.receipt_number for r in po.receipts]
                if len(numbers) != len(set(numbers)):
                    report.doubled += 1
                    report.problems.append(f"doubled: PO {number} lists receipts {numbers}")
                ours = sum(sent[n].qty for n in set(numbers) if n in sent)
                listed = sum(
                    ln["qty_received"] for r in po.receipts for ln in r.lines if ln["sku"] == LIMITED
                )
                got = po.line(LIMITED).received
                if not got == listed == ours:
                    report.doubled += 1
                    report.problems.append(
                        f"doubled: PO {number} received {got}, its receipts {listed}, delivered {ours}"
                    )
                for d in (
                    d for d in self.deliveries if d.po == number and d.taken and d.receipt not in numbers
                ):
                    report.lost += 1
                    report.problems.append(f"lost receipt {d.receipt}: taken (2xx) but not on the PO")
                units += got
                received += len(set(numbers))
        with self.chaos.lock:
            self.chaos.stocked[LIMITED] += units
        report.problems += self.problems
        report.purchasing = {
            "pos": len(self.pos),
            "not_placed": len(self.problems),
            "deliveries": len(self.deliveries),
            "taken": sum(d.taken for d in self.deliveries),
            "receipts_on_pos": received,
            "units_received": units,
        }
        report.problems += [
            f"delivery {d.receipt} not taken: last answer {d.answer}" for d in self.deliveries if not d.taken
        ]
