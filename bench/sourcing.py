"""Order sourcing on one hot SKU, without Temporal or HTTP in the way: the worker's real
`record_order` activity (record, then source and reserve) called by C concurrent clients, each
order one unit of the same SKU, with the order path reserving one step at a time
(`reservation_batching` off: before issue 20) and through the worker's ReservationBatcher
(after), on the same durable Postgres in the same run.

    .venv/bin/python -m bench.sourcing [--seconds 20] [--clients 1,8,32]

For each C the two modes run in off/on/on/off half-windows (drift hits both alike); each
call first writes the order's rows as the API does (one transaction), then the activity. At 1
client the SKU is cold (nothing queues): the p50/p99 there is what a cold SKU's order pays
for the batch's own transaction. Results: a table, and bench/results/sourcing.json."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from activities.gateways import gateway_from_settings
from activities.orders import OrderActivities
from bench.common import NYC, Run, closed_loop_calls, durable_postgres, machine, write_json
from models.order_intake import IntakeLine, OrderIntake, insert_order
from models.stock.batcher import ReservationBatcher
from runtime.db import make_async_engine
from runtime.settings import Settings
from tests.factories import receive, set_policy, standard_catalog
from workflows.contracts import RecordOrder, order_workflow_id

HOT_STOCK = 10_000_000
console = Console(width=150)


def order_intake(channel: str, external_id: str, sku: str, qty: int, *, allow_backorder: bool) -> OrderIntake:
    """The rows the API writes for an order of `qty` × `sku` (card, authorized)."""
    return OrderIntake(
        order_id=order_workflow_id(channel, external_id),
        channel=channel,
        external_id=external_id,
        customer_id=external_id,
        customer_email="a@example.com",
        ship_to=NYC,
        billing_address=None,
        promise="standard",
        allow_backorder=allow_backorder,
        allow_split=True,
        currency="USD",
        shipping_amount=0,
        tax_amount=0,
        payment_method="card",
        payment_reported="authorized",
        payment_amount=qty * 2000,
        payment_reference="ref-1",
        request_hash=hashlib.sha256(external_id.encode()).hexdigest(),
        lines=[IntakeLine(sku, qty, 2000)],
    )


def ordering(steps: OrderActivities, tag: str) -> Callable[[int, int], Any]:
    async def call(client: int, n: int) -> bool:
        intake = order_intake("web", f"{tag}-{client}-{n}", "TEE", 1, allow_backorder=False)
        async with steps.engine.begin() as conn:
            await insert_order(conn, intake)
        recorded = await steps.record_order(RecordOrder(intake.order_id, source_step="source"))
        return recorded.sourced is not None and bool(recorded.sourced.new_shipments)

    return call


async def measure(url: str, clients: int, seconds: float, run_id: str) -> dict[str, Any]:
    settings = Settings(database_url=url)
    eng = make_async_engine(url, pool_size=clients + 2)
    batcher = ReservationBatcher(make_async_engine(url, pool_size=4))
    gateway = gateway_from_settings(settings)
    one_at_a_time, batched = OrderActivities(eng, gateway, None), OrderActivities(eng, gateway, batcher)
    tag = f"{run_id}-{clients}"
    try:
        half = seconds / 2
        off1 = await closed_loop_calls(clients, half, ordering(one_at_a_time, f"{tag}-off1"), warmup=0)
        on1 = await closed_loop_calls(clients, half, ordering(batched, f"{tag}-on1"), warmup=0)
        on2 = await closed_loop_calls(clients, half, ordering(batched, f"{tag}-on2"), warmup=0)
        off2 = await closed_loop_calls(clients, half, ordering(one_at_a_time, f"{tag}-off2"), warmup=0)
        sizes = batcher.batch_sizes
        return {
            "one_at_a_time": off1.merge(off2),
            "batched": on1.merge(on2),
            "mean_batch": sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values())),
        }
    finally:
        await batcher.aclose()
        await batcher.engine.dispose()
        await eng.dispose()


async def seed(url: str) -> None:
    eng = make_async_engine(url, pool_size=2)
    try:
        await standard_catalog(eng)
        await receive(eng, "TEE", "DC-EAST", HOT_STOCK, key="bench:stock")
        async with eng.begin() as conn:  # the rules a flash sale's reservations keep
            await set_policy(conn, "web", "TEE", safety=5)
            await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 1000})
    finally:
        await eng.dispose()


def _row(clients: int, r: dict[str, Any]) -> list[str]:
    off: Run = r["one_at_a_time"]
    on: Run = r["batched"]
    ratio = on.per_second / off.per_second if off.per_second else 0.0
    return [
        str(clients),
        f"{off.per_second:.1f}",
        f"{on.per_second:.1f}",
        f"{ratio:.2f}",
        f"{off.p(0.5):.1f} / {off.p(0.99):.1f}",
        f"{on.p(0.5):.1f} / {on.p(0.99):.1f}",
        f"{r['mean_batch']:.1f}",
    ]


async def main_async(seconds: float, levels: list[int]) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    with durable_postgres() as pg:
        await seed(pg.url)
        results = {}
        for c in levels:
            results[c] = await measure(pg.url, c, seconds, run_id)
            console.print(_row(c, results[c]))
    table = Table(
        title="record + source one order of one hot SKU: steps/s (machine shared, compare within the run)"
    )
    for head in (
        "clients",
        "one at a time /s",
        "batched /s",
        "batched ÷ one",
        "one p50/p99 ms",
        "batched p50/p99 ms",
        "batch",
    ):
        table.add_column(head)
    for c, r in results.items():
        table.add_row(*_row(c, r))
    console.print(table)
    return {"machine": machine(), "seconds": seconds, "levels": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per mode and client count")
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()
    out = asyncio.run(main_async(args.seconds, [int(c) for c in args.clients.split(",")]))
    print(f"wrote {write_json('sourcing.json', out)}")


if __name__ == "__main__":
    main()
