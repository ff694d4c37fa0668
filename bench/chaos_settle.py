"""After the chaos bench's load: wait while the orders still move, and give up only once
nothing has moved for a while.

A fixed deadline failed slow machines: a picked order that was still moving (the warehouse
and the worker were working through the backlog a restart left) counted as stuck. So the
wait is on progress instead. Progress is a fingerprint of the business state in Postgres:
how many orders, shipments, purchase orders and returns are in each status, and how many
timeline events each kind has (a step inside one status, a partial receipt, a retry that
recorded its step). While it changes between two looks, settling goes on (up to a generous
cap, so a run cannot hang); once it has not changed for `stall_seconds` the orders still
unsettled are stuck, and the report names them and what they wait in."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from bench.chaos_load import Chaos
from bench.chaos_setup import OPEN_STATUSES
from bench.chaos_stack import describe_workflows
from bench.chaos_verify import settled
from client import Order

# (what, status or kind, count): one row each; a changed count anywhere is progress.
FINGERPRINT = """
SELECT 'order', status, count(*) FROM sales_order GROUP BY status
UNION ALL SELECT 'shipment', status, count(*) FROM shipment GROUP BY status
UNION ALL SELECT 'order event', event, count(*) FROM order_event GROUP BY event
UNION ALL SELECT 'purchase order', status, count(*) FROM purchase_order GROUP BY status
UNION ALL SELECT 'po event', event, count(*) FROM po_event GROUP BY event
UNION ALL SELECT 'return', status, count(*) FROM sales_return GROUP BY status
UNION ALL SELECT 'return event', event, count(*) FROM return_event GROUP BY event
"""
POLL_SECONDS = 2.0

Fingerprint = frozenset[tuple[str, str, int]]


def progress_fingerprint(database_url: str) -> Fingerprint | None:
    """The counts above, or None when Postgres did not answer (no news: not progress)."""
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            rows = conn.execute(FINGERPRINT).fetchall()
    except psycopg.Error:
        return None
    return frozenset((str(what), str(status), int(n)) for what, status, n in rows)


@dataclass
class Settling:
    """How settling ended: its time, the orders still unsettled, and why it stopped early."""

    seconds: float = 0.0
    unsettled: list[Order] = field(default_factory=list)
    stalled: str = ""  # set when nothing moved for the stall time (or the cap was reached)
    progress_seen: int = 0  # looks at which the fingerprint had changed


def settle(chaos: Chaos, stall_seconds: float, cap_seconds: float) -> Settling:
    """Wait until no order is in a state the warehouse or the worker still has to move, as
    long as the business state keeps changing (see the module's docstring)."""
    t = time.monotonic()
    out = Settling()
    last: Fingerprint | None = None
    last_change = t
    with chaos.client() as admin:
        while True:
            out.unsettled = [o for o in chaos.orders(admin, OPEN_STATUSES) if not settled(o)]
            if not out.unsettled:
                break
            # An order whose workflow has ended will not move again: stuck, not slow.
            ended = asyncio.run(
                describe_workflows(chaos.stack.temporal_address, [o.id for o in out.unsettled])
            )
            if all(ended.get(o.id) not in (None, "RUNNING") for o in out.unsettled):
                out.stalled = "every unsettled order's workflow has ended"
                break
            now = time.monotonic()
            seen = progress_fingerprint(chaos.stack.database_url)
            if seen is not None and seen != last:
                out.progress_seen += last is not None
                last, last_change = seen, now
            if now - last_change > stall_seconds:
                out.stalled = f"nothing moved for {now - last_change:.0f}s; {stuck_summary(out.unsettled)}"
                break
            if now - t > cap_seconds:
                out.stalled = (
                    f"still moving after the cap of {cap_seconds:.0f}s; {stuck_summary(out.unsettled)}"
                )
                break
            time.sleep(POLL_SECONDS)
    out.seconds = time.monotonic() - t
    return out


def stuck_summary(unsettled: list[Order]) -> str:
    """`3 orders unsettled: in_fulfillment with a shipment picked ×2, …` (the first ids follow)."""
    where: Counter[str] = Counter()
    for o in unsettled:
        busy = sorted({s.status for s in o.shipments if s.status not in ("shipped", "cancelled")})
        where[o.status + (f" with a shipment {'/'.join(busy)}" if busy else "")] += 1
    kinds = ", ".join(f"{k} ×{n}" for k, n in where.most_common())
    return f"{len(unsettled)} orders unsettled: {kinds} (e.g. {', '.join(o.id for o in unsettled[:3])})"
