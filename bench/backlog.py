"""Cost as work waits: N orders backordered on a SKU with no stock and N more on a payment
hold, all through the HTTP API on one `omniflow dev` stack; then one stock arrival large
enough for every backorder, timed until each is allocated (the backorder dispatcher's
throughput, polled in Postgres).

    .venv/bin/python -m bench.backlog [--orders 10000] [--concurrency 48] [--sample 20]

Prints the worker's and the Temporal server's RSS before, after the orders wait and after
the arrival, each kind's history size per order (events and bytes, from
DescribeWorkflowExecution and a history fetch of a sample), creation and dispatch rates;
writes bench/results/backlog.json. How a waiting order's history grows over days and the
bound it continues as new at: workflows/order_carry.py and docs/scaling.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
from temporalio.client import Client

from bench.chaos_stack import temporal_process, worker_process
from bench.common import NYC_ADDRESS, machine, run_jobs, write_json
from bench.lifecycle_shop import Shop
from bench.stack import DevStack
from client import Customer, NewLine, NewOrder, NewPayment, NewSku, StockAdjustment
from workflows.contracts import BACKORDER_DISPATCHER_ID, WakeResult

WAITING_SKU = NewSku(code="BACKLOG", name="Sold out jacket", unit_cost=3000, price=9000)
KINDS = {  # kind -> (external id prefix, SKU, payment status, status the order waits in)
    "backorder": ("bo", "BACKLOG", "authorized", "awaiting_stock"),
    "payment_hold": ("ph", "TEE", "pending", "on_hold"),
}
SETTLE_TIMEOUT = 1800.0


def _rss_mb(proc: psutil.Process | None) -> float:
    try:
        return round(proc.memory_info().rss / 2**20, 1) if proc else float("nan")
    except psutil.Error:
        return float("nan")


def rss(stack: DevStack) -> dict[str, float]:
    return {"worker_mb": _rss_mb(worker_process(stack)), "temporal_mb": _rss_mb(temporal_process(stack))}


def count_in(database_url: str, prefix: str, status: str) -> int:
    """Orders of `prefix` in `status`, read in Postgres (no load on the API)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sales_order WHERE channel = 'web' AND external_id LIKE %s AND status = %s",
            (f"{prefix}-%", status),
        ).fetchone()
    return int(row[0]) if row else 0


async def settle(database_url: str, prefix: str, status: str, n: int, timeout: float) -> tuple[float, int]:
    """Seconds until `n` orders of `prefix` are in `status` (or the timeout), and how many are."""
    t0 = time.perf_counter()
    while True:
        done = await asyncio.to_thread(count_in, database_url, prefix, status)
        if done >= n or time.perf_counter() - t0 > timeout:
            return time.perf_counter() - t0, done
        await asyncio.sleep(0.5)


async def create(shop: Shop, kind: str, orders: int, concurrency: int) -> dict[str, Any]:
    prefix, sku, payment, status = KINDS[kind]
    price = WAITING_SKU.price if sku == WAITING_SKU.code else 2500
    web = shop.channel["web"]

    async def one(n: int) -> None:
        external_id = f"{prefix}-{n}"
        amount = price + 700 if payment != "pending" else 0
        body = NewOrder(
            channel="web",
            external_id=external_id,
            customer=Customer(id=f"c-{external_id}", email="b@example.com"),
            ship_to=NYC_ADDRESS,
            lines=[NewLine(sku=sku, qty=1, unit_price=price)],
            shipping_amount=500,
            tax_amount=200,
            payment=NewPayment(method="card", status=payment, reference=external_id, amount=amount),
        )
        await web.create_order(body, idempotency_key=external_id)

    seconds, failed = await run_jobs(concurrency, orders, one)
    settled, waiting = await settle(shop.stack.database_url, prefix, status, orders - failed, SETTLE_TIMEOUT)
    return {
        "created": orders - failed,
        "failed_requests": failed,
        "create_seconds": round(seconds, 1),
        "created_per_s": round((orders - failed) / seconds, 1) if seconds else 0.0,
        "waiting": waiting,
        "waiting_in": status,
        "all_waiting_after_s": round(seconds + settled, 1),
    }


async def history_per_order(temporal: Client, kind: str, orders: int, sample: int) -> dict[str, Any]:
    """Events and bytes of a random sample of one kind's orders: the server's own count
    (DescribeWorkflowExecution) and a fetch of the history (the bytes a replay reads)."""
    prefix = KINDS[kind][0]
    picked = random.Random(7).sample(range(orders), min(sample, orders))
    events: list[int] = []
    server_bytes: list[int] = []
    fetched_bytes: list[int] = []
    for n in picked:
        handle = temporal.get_workflow_handle(f"order-web-{prefix}-{n}")
        info = (await handle.describe()).raw_description.workflow_execution_info
        events.append(info.history_length)
        server_bytes.append(info.history_size_bytes)
        fetched_bytes.append(sum(e.ByteSize() for e in (await handle.fetch_history()).events))
    return {
        "sampled": len(picked),
        "events_mean": round(sum(events) / len(events), 1),
        "events_max": max(events),
        "bytes_mean": round(sum(server_bytes) / len(server_bytes)),
        "fetched_bytes_mean": round(sum(fetched_bytes) / len(fetched_bytes)),
    }


async def dispatch(shop: Shop, orders: int) -> dict[str, Any]:
    """One arrival of `orders` units of the waiting SKU; seconds until every backorder is
    allocated, and the orders a second the dispatcher and the woken orders got through."""
    adjustment = StockAdjustment(sku=WAITING_SKU.code, location="DC-EAST", delta=orders, reason="found")
    t0 = time.perf_counter()
    await shop.admin.adjust_stock(adjustment, idempotency_key=f"backlog-arrival-{orders}")
    _, allocated = await settle(
        shop.stack.database_url, KINDS["backorder"][0], "allocated", orders, SETTLE_TIMEOUT
    )
    seconds = time.perf_counter() - t0  # from the request that posted the arrival
    return {
        "allocated": allocated,
        "of": orders,
        "seconds": round(seconds, 1),
        "orders_per_s": round(allocated / seconds, 1) if seconds else 0.0,
    }


async def signalling(temporal: Client) -> list[dict[str, Any]]:
    """The dispatcher's rounds that woke orders: how many, and how long the round took from
    the activity's start to its result (reading the arrival, paging, every signal)."""
    history = await temporal.get_workflow_handle(BACKORDER_DISPATCHER_ID).fetch_history()
    started = {
        e.event_id: e.event_time.ToDatetime()
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    }
    rounds = []
    for e in history.events:
        if not e.HasField("activity_task_completed_event_attributes"):
            continue
        done = e.activity_task_completed_event_attributes
        (result,) = temporal.data_converter.payload_converter.from_payloads(
            done.result.payloads, [WakeResult]
        )
        if result.woken_count:
            seconds = (e.event_time.ToDatetime() - started[done.started_event_id]).total_seconds()
            rounds.append({"woken": result.woken_count, "seconds": round(seconds, 1)})
    return rounds


async def run(orders: int, concurrency: int, sample: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omniflow-backlog-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
        shop = Shop(stack)
        try:
            await shop.setup()
            await shop.admin.create_sku(WAITING_SKU)
            temporal = await Client.connect(stack.temporal_address)
            result: dict[str, Any] = {"orders": orders, "concurrency": concurrency, "machine": machine()}
            result["rss_before"] = rss(stack)
            for kind in KINDS:
                result[kind] = await create(shop, kind, orders, concurrency)
                print(f"{kind}: {json.dumps(result[kind])}", flush=True)
            result["rss_waiting"] = rss(stack)
            result["history"] = {k: await history_per_order(temporal, k, orders, sample) for k in KINDS}
            result["dispatch"] = await dispatch(shop, orders)
            result["dispatcher_rounds"] = await signalling(temporal)
            result["rss_after_dispatch"] = rss(stack)
            result["history_after_dispatch"] = await history_per_order(temporal, "backorder", orders, sample)
            return result
        finally:
            await shop.close()
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders of each kind")
    parser.add_argument("--concurrency", type=int, default=48, help="API clients creating orders")
    parser.add_argument("--sample", type=int, default=20, help="orders of each kind whose history is read")
    args = parser.parse_args()
    result = asyncio.run(run(args.orders, args.concurrency, args.sample))
    print(json.dumps(result, indent=2))
    print(f"wrote {write_json(f'backlog-{args.orders}.json', result)}")


if __name__ == "__main__":
    main()
