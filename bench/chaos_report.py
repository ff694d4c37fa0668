"""What the chaos bench found: the orders placed, the events it caused, the report and its
tables (bench/chaos.py)."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import machine

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


@dataclass
class Placed:
    id: str
    channel: str
    lines: list[tuple[str, int, int]]  # (sku, qty, unit_price)
    allow_backorder: bool
    at: float  # seconds into the load
    latency_s: float
    attempts: int


@dataclass
class ChaosEvent:
    kind: str
    at: float  # seconds into the load
    detail: str = ""
    back_after_s: float | None = None  # until the killed thing answers again
    ready_after_s: float | None = None  # until /readyz says ready again


@dataclass
class Report:
    config: dict[str, Any]
    placed: int = 0
    not_placed: int = 0  # gave up (never a 2xx) or refused with a 4xx
    turned_away: int = 0  # refused at intake for want of stock (409 insufficient-stock): nothing written
    completed: int = 0
    cancelled: int = 0
    waiting: dict[str, int] = field(default_factory=dict)  # by status
    lost: int = 0
    doubled: int = 0
    oversold: int = 0
    drift: int = 0
    stuck: int = 0
    stuck_orders: list[dict[str, str]] = field(default_factory=list)  # id, status, workflow, why
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    stack_alive: bool = True
    events: list[ChaosEvent] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # from the supervisor's log
    updates_finished: dict[str, int] = field(default_factory=dict)  # outcome -> n, from the APIs' logs
    caught_up: int = 0  # steps sent again from the shipment's record after a refusal (APIs' logs)
    responses: dict[str, int] = field(default_factory=dict)  # "POST /v1/orders 503": n
    server_errors: list[str] = field(default_factory=list)  # a sample of 5xx bodies, with the time
    stock: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # sku -> stocked, shipped, reserved, on_hand
    capture_latency_ms: dict[str, float] = field(default_factory=dict)
    purchasing: dict[str, int] = field(default_factory=dict)  # the receiving dock's POs and receipts
    returns: dict[str, int] = field(default_factory=dict)  # the returns desk's returns and their money
    placed_per_s: float = 0.0
    shipments_shipped: int = 0
    settle_s: float = 0.0
    settle_stalled: str = ""  # why settling stopped with orders unsettled (bench/chaos_settle.py)
    problems: list[str] = field(default_factory=list)  # one line per lost / doubled / oversold / stuck item
    seconds_total: float = 0.0
    machine: dict[str, Any] = field(default_factory=machine)

    @property
    def checks_clean(self) -> bool:
        return bool(self.checks) and all(c["findings"] == 0 and c["exit"] == 0 for c in self.checks.values())

    @property
    def ok(self) -> bool:
        return (
            self.stack_alive
            and self.placed > 0
            and self.lost == self.doubled == self.oversold == self.drift == self.stuck == 0
            and self.checks_clean
        )

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["checks_clean"] = self.checks_clean
        return out


def print_report(r: Report) -> None:
    console.print(_counts(r))
    console.print(_events(r))
    console.print(f"supervisor restarts: {r.restarts}")
    console.print(f"updates a 503 left unanswered, sent again by the API: {r.updates_finished}")
    console.print(f"steps a refusal sent again from the shipment's record: {r.caught_up}")
    console.print(f"receiving dock: {r.purchasing}")
    console.print(f"returns desk: {r.returns}")
    console.print(_stock(r))
    console.print(_answers(r))
    for line in r.server_errors[:8]:
        console.print(f"[yellow]5xx[/] {line}")
    for line in r.problems[:30]:
        console.print(f"[red]problem[/] {line}")
    console.print(
        f"[bold {'green' if r.ok else 'red'}]{'OK' if r.ok else 'FAILED'}[/]: lost {r.lost}, doubled {r.doubled}, "
        f"oversold {r.oversold}, drift {r.drift}, stuck {r.stuck}, checks {'clean' if r.checks_clean else 'NOT clean'}"
        f" ({r.seconds_total:.0f}s in all)"
    )


def _counts(r: Report) -> Table:
    counts = Table(title="chaos: orders", show_header=True)
    counts.add_column("what")
    counts.add_column("count", justify="right")
    rows: list[tuple[str, Any]] = [
        ("placed", r.placed),
        ("  not placed (gave up / refused)", r.not_placed),
        ("  turned away at intake (no stock)", r.turned_away),
        ("completed", r.completed),
        ("cancelled", r.cancelled),
    ]
    rows += [(f"waiting: {k}", v) for k, v in r.waiting.items()]
    rows += [
        ("lost", r.lost),
        ("doubled", r.doubled),
        ("oversold", r.oversold),
        ("stock drift", r.drift),
        ("stuck", r.stuck),
        ("shipments shipped", r.shipments_shipped),
        ("placed / s", r.placed_per_s),
        ("settle time (s)", r.settle_s),
        ("settling stopped", r.settle_stalled or "-"),
    ]
    rows += [(f"capture latency {k} (ms)", v) for k, v in r.capture_latency_ms.items()]
    rows += [(f"omniflow {what} check findings", c["findings"]) for what, c in r.checks.items()]
    for name, value in rows:
        bad = name in ("lost", "doubled", "oversold", "stock drift", "stuck") and value
        counts.add_row(name, f"[red]{value}[/]" if bad else str(value))
    return counts


def _events(r: Report) -> Table:
    events = Table(title="chaos: events", show_header=True)
    for col in ("t (s)", "what", "detail", "back after (s)", "API ready after (s)"):
        events.add_column(col)
    for e in r.events:
        events.add_row(
            f"{e.at:.1f}", e.kind, e.detail, str(e.back_after_s or "-"), str(e.ready_after_s or "-")
        )
    return events


def _stock(r: Report) -> Table:
    stock = Table(title="chaos: stock per SKU", show_header=True)
    for col in ("sku", "stocked", "shipped", "reserved", "on hand"):
        stock.add_column(col, justify="right")
    for sku, s in r.stock.items():
        stock.add_row(sku, str(s["stocked"]), str(s["shipped"]), str(s["reserved"]), str(s["on_hand"]))
    return stock


def _answers(r: Report) -> Table:
    answers = Table(title="chaos: HTTP answers the clients saw (not 2xx)", show_header=True)
    answers.add_column("request and answer")
    answers.add_column("count", justify="right")
    for k, v in r.responses.items():
        if not re.search(r" 20\d$", k):
            answers.add_row(k, str(v))
    return answers
