"""What the chaos bench runs with: its configuration, catalog, opening stock and the stack's
settings (bench/chaos.py describes the run)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from bench.common import CHANNELS as CHANNEL_LIST
from bench.common import NYC_ADDRESS
from client import Customer, NewLine, NewOrder, NewPayment, NewSku

CHANNELS = tuple(c.code for c in CHANNEL_LIST)  # web, market, edi
LIMITED = "LTD"
SKUS = [
    NewSku(code="TEE", name="Tee", unit_cost=600, price=2500),
    NewSku(code="MUG", name="Mug", unit_cost=350, price=1600),
    NewSku(code=LIMITED, name="Limited print", unit_cost=4000, price=9900),
]
# (sku, location, units): plenty of tees and mugs, a handful of the limited print.
OPENING_STOCK = [
    ("TEE", "DC-EAST", 5000),
    ("TEE", "DC-WEST", 5000),
    ("MUG", "DC-EAST", 5000),
    ("MUG", "DC-WEST", 5000),
    (LIMITED, "DC-EAST", 6),
    (LIMITED, "DC-WEST", 4),
]
RESTOCK_UNITS = 2
OPEN_STATUSES = (
    "received",
    "on_hold",
    "awaiting_stock",
    "allocated",
    "in_fulfillment",
    "partially_shipped",
    "shipped",
)
EXPECTED_WAITS = ("awaiting_stock", "on_hold")
# An order's final statuses: completed, then maybe returned in part or in full (bench/chaos_returns.py).
RETURNED = ("partially_returned", "returned")
FINAL = ("completed", "cancelled", *RETURNED)
STACK_ENV = {
    # A backorder re-checks stock every 5 s (not hourly), so one a restock missed is not left behind.
    "OMNIFLOW_BACKORDER_RECHECK_SECONDS": "5",
    # A warehouse update waits 5 s for the worker before the API answers 503 (the scanner retries).
    "OMNIFLOW_RPC_TIMEOUT_SECONDS": "5",
    # A create that died with Postgres leaves its Idempotency-Key in flight (nothing can delete it
    # while the database is down); the channel's retry is answered 409 until the key is taken over
    # after this many seconds (default 60, which would stall every such order for a minute).
    "OMNIFLOW_IDEMPOTENCY_IN_FLIGHT_SECONDS": "10",
}
HTTP_TIMEOUT = 30.0


@dataclass
class ChaosConfig:
    seconds: float = 60.0  # of order load (and chaos)
    clients: int = 4  # order-placing threads
    rate: float = 5.0  # orders per second, all clients together (paced; a retry delays its client)
    pickers: int = 2  # warehouse threads (each works its own share of the shipments)
    kill_every: float = 5.0  # SIGKILL the worker this often
    temporal_at: float = 0.3  # kill the Temporal dev server at this fraction of `seconds`
    postgres_at: float = 0.6  # crash Postgres at this fraction of `seconds`
    pg_down: float = 3.0  # seconds Postgres stays down
    pg_stop_mode: str = "immediate"  # pg_ctl stop mode: immediate = a crash, fast = a clean restart
    restock_every: float = 8.0  # add RESTOCK_UNITS of the limited SKU this often
    po_every: float = 6.0  # place a PO for the limited SKU this often and receive it (chaos_purchasing)
    return_every: float = 2.0  # return a completed order this often, received and inspected (0: none)
    settle_stall_seconds: float = 60.0  # after the load, settling fails once nothing moved this long
    settle_seconds: float = 900.0  # and stops at this cap even while things still move (no hang)
    replicas: int = 1  # workers and APIs (`omniflow dev --replicas`); with 2, kills alternate
    seed: int = 7
    data_dir: Path | None = None  # default: a temporary directory, removed afterwards

    def schedule(self) -> list[tuple[float, str]]:
        """(seconds after the start of the load, event), in time order. Worker kills that
        would land within 1.5 s of the Temporal or Postgres event move past it, so each kind
        of failure is seen on its own (the next kill is due in `kill_every` anyway). When it
        runs, a kill also waits until the previous one of its kind has been back `kill_every` s:
        the supervisor's restart delay grows to 5 s, so kills every 5 s on the clock would
        leave no worker running at all. With replicas the kills alternate between a worker
        and an API process (`kill_every` apart, so each kind is killed every 2 × `kill_every`)."""
        events = [
            (self.seconds * self.temporal_at, "temporal"),
            (self.seconds * self.postgres_at, "postgres"),
        ]
        t = self.kill_every
        while t < self.seconds - 1.0:
            for at, _ in events[:2]:
                if abs(t - at) < 1.5:
                    t = at + 1.5
            if t < self.seconds - 1.0:
                kills = sum(kind in ("worker", "api") for _, kind in events)
                events.append((t, "api" if self.replicas > 1 and kills % 2 else "worker"))
            t += self.kill_every
        return sorted(events)


def order_body(rng: random.Random, channel: str, ext: str) -> tuple[NewOrder, bool]:
    """One order of the mix (bench/chaos.py), and whether it may be backordered."""
    r = rng.random()
    backorder = True
    if r < 0.6:
        lines = [("TEE", rng.randint(1, 3), 2500)] + ([("MUG", 1, 1600)] if rng.random() < 0.5 else [])
    elif r < 0.75:
        lines, backorder = [(LIMITED, rng.randint(1, 2), 9900)], False
    elif r < 0.9:
        lines = [(LIMITED, 1, 9900), ("TEE", 1, 2500)]
    else:
        lines = [(LIMITED, 1, 9900)]
    body = NewOrder(
        channel=channel,
        external_id=ext,
        customer=Customer(id=f"c-{ext}", email="chaos@example.com"),
        ship_to=NYC_ADDRESS,
        lines=[NewLine(sku=s, qty=q, unit_price=p) for s, q, p in lines],
        shipping_amount=500,
        tax_amount=300,
        allow_backorder=backorder,
        payment=NewPayment(
            method="card",
            status="authorized",
            reference=f"psp-{ext}",
            amount=sum(q * p for _, q, p in lines) + 800,
        ),
    )
    return body, backorder
