"""Order throughput against the bare-Temporal ceiling, and a flash sale, on one `omniflow dev`
stack (embedded Postgres, the Temporal dev server with file persistence, the worker process
and the API), all measured in the same run.

- **ours**: N orders captured over HTTP at concurrency C, each driven by a simulated
  warehouse (poll until allocated, pick, pack, ship, poll until completed): orders per
  second, capture latency percentiles, per-stage durations.
- **ceiling**: `bench.ceiling.CeilingWorkflow` with the same Temporal round trips as one of
  our orders (counted from a real order's history in this run; driven by
  bench.ceiling_driver so that it makes an order's workflow tasks too), at the same
  concurrency, then at ours' orders/s, on the same server, with the same worker settings.
- **flash sale**: three channels, one SKU with little stock, many more concurrent orders
  than units: `{stock, accepted_units, oversold}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client

from bench import open_loop as bench_open_loop
from bench.ceiling import Shape
from bench.ceiling_driver import CeilingWorker, measure_ceiling, measure_ceiling_at_rate, start_ceiling_worker
from bench.common import percentile, run_jobs
from bench.lifecycle_report import order_shape, plot, shape_of, table
from bench.lifecycle_shop import Floor, Shop
from bench.stack import DevStack
from client import Ringfence

__all__ = ["Floor", "Point", "Shop", "order_shape", "plot", "run", "shape_of", "table"]


def _stack_part(pid: int, cmd: str, data: str) -> str | None:
    """Which part of the stack a process is, by its command line; None when it is none of them.
    `postmaster` is Postgres's main process (counted with the backends that have exited)."""
    if pid == os.getpid():
        return "load_generator"
    if "-m worker" in cmd and "python" in cmd:
        return "worker"
    if "-m api" in cmd and "python" in cmd:
        return "api"
    if "temporal server start-dev" in cmd and data in cmd:
        return "temporal"
    if cmd.startswith("postgres:"):  # a backend or helper, while it lives
        return "postgres"
    if data in cmd and "postgres" in cmd:
        return "postmaster"
    return None


def _stack_processes(stack: DevStack) -> list[psutil.Process]:
    """This run's processes only: the dev stack's descendants (worker, API, Temporal server),
    its Postgres (the postmaster, found by its data directory, which is not a descendant) with
    its backends, and this load generator. Other stacks on a shared machine (other benches,
    test runs) have workers, APIs and Postgres backends with the same command lines."""
    procs = [psutil.Process()]
    with contextlib.suppress(psutil.Error):
        procs += psutil.Process(stack.proc.pid).children(recursive=True) if stack.proc else []
    data = str(stack.data_dir)
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.info["cmdline"] or [])
            if data in cmd and "postgres" in cmd and "temporal" not in cmd:
                procs += [proc, *proc.children()]
    return list({p.pid: p for p in procs}.values())


def cpu_seconds(stack: DevStack) -> dict[str, float]:
    """CPU time so far of each part of the stack (and of this load generator)."""
    out: dict[str, float] = defaultdict(float)
    data = str(stack.data_dir)
    for proc in _stack_processes(stack):
        try:
            cmd = " ".join(proc.cmdline())
            times = proc.cpu_times()
        except psutil.Error:
            continue
        part = _stack_part(proc.pid, cmd, data)
        if part == "postmaster":  # with the backends that have exited
            part = "postgres"
            out[part] += times.children_user + times.children_system
        if part:
            out[part] += times.user + times.system
    return dict(out)


async def db_counters(shop: Shop) -> dict[str, int]:
    """Commits and row writes of the database so far (pg_stat_database), and the transaction
    ids handed out (`write_xacts`: a transaction gets one at its first write or row lock; the
    cluster's counter, and only omniflow writes to this cluster). `commits` counts every
    committed transaction, a single autocommit read included; `write_xacts` only those that
    wrote (what costs a WAL flush). `sessions`: backends started (a connection each: a fork
    and an authentication), the counting one included."""
    import psycopg

    with psycopg.connect(shop.stack.database_url) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint, sessions"
            " FROM pg_stat_database WHERE datname = 'omniflow'"
        ).fetchone()
    assert row is not None
    return {
        "commits": int(row[0]),
        "rows_inserted": int(row[1]),
        "rows_updated": int(row[2]),
        "write_xacts": int(row[4]),
        "sessions": int(row[5]),
    }


@dataclass
class Point:
    """One concurrency level: ours and the ceiling side by side."""

    concurrency: int
    orders: int
    orders_per_s: float = 0.0
    ceiling_wf_per_s: float = 0.0
    ratio: float = 0.0
    capture_ms: dict[str, float] = field(default_factory=dict)
    stages_ms: dict[str, float] = field(default_factory=dict)  # median per stage
    failed: int = 0
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)  # by process
    db_per_order: dict[str, float] = field(default_factory=dict)  # commits, write transactions, row writes
    ceiling_cpu_ms_per_wf: dict[str, float] = field(default_factory=dict)
    # Where every process shares the same cores, throughput follows CPU per unit of work:
    # `cpu_ratio` = the ceiling's CPU per workflow ÷ ours per order is what `ratio` tends to
    # when both are CPU-bound. `server_ratio` = the Temporal server's CPU per ceiling
    # workflow ÷ per order: the ratio where the Temporal server is the bottleneck (its own
    # machines, as in production), which is the premise of "the ceiling".
    cpu_ratio: float = 0.0
    server_ratio: float = 0.0
    # The no-op offered at ours' orders/s: the dev server's CPU per workflow grows as its rate
    # falls (bench.ceiling_driver), so this is its work for the same shape at the same rate.
    ceiling_at_our_rate: dict[str, float] = field(default_factory=dict)
    server_ratio_at_our_rate: float = 0.0
    # The same for every process: the no-op's whole CPU (server, its worker, its client) per
    # workflow at ours' rate ÷ ours per order, both sides doing the same work per second.
    cpu_ratio_at_our_rate: float = 0.0


async def _lifecycle(shop: Shop, floor: Floor, external_id: str, capture: list[float]) -> str:
    t0 = time.perf_counter()
    order_id, took, created_at = await shop.place("web", external_id, "TEE", 1)
    capture.append(took)
    floor.in_flight[order_id] = created_at
    await asyncio.wait_for(floor.completed[order_id].wait(), 300)
    done = floor.completed_at[order_id]
    allocated, shipped = floor.allocated_at.get(order_id, done), floor.shipped_at.get(order_id, done)
    floor.stages["capture_to_pick_task"].append((allocated - t0) * 1000)
    floor.stages["ship_to_completed_seen"].append((done - shipped) * 1000)
    floor.stages["total"].append((done - t0) * 1000)
    return order_id


async def measure_ours(shop: Shop, concurrency: int, total: int, tag: str) -> Point:
    floor = Floor(shop)
    runner = asyncio.create_task(floor.run())
    capture: list[float] = []
    try:
        seconds, failed = await run_jobs(
            concurrency, total, lambda n: _lifecycle(shop, floor, f"{tag}-{n}", capture)
        )
    finally:
        floor.stop()
        await runner
    for err in floor.errors[:5]:
        print(f"  warehouse: {err}", file=sys.stderr)
    cap = sorted(capture)
    return Point(
        concurrency=concurrency,
        orders=total,
        orders_per_s=round((total - failed) / seconds, 2),
        failed=failed,
        capture_ms={q: round(percentile(cap, p), 1) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        stages_ms={k: round(percentile(sorted(v), 0.5), 1) for k, v in floor.stages.items()},
    )


async def flash_sale(shop: Shop, stock: int, orders: int, concurrency: int) -> dict[str, Any]:
    """Three channels race for `stock` units of one SKU (a ring-fence for the app channel): nothing
    may be promised twice, no unit left while a buyer was turned away. Capture latency of the
    orders taken; each refused line's reason (its `line_refused` event, or intake's 409)."""
    await shop.adjust("FLASH", "DC-EAST", stock - 10)
    await shop.adjust("FLASH", "DC-WEST", 10)
    fence = [Ringfence(location="DC-EAST", qty=5)]
    await shop.admin.set_policy("app", "FLASH", safety_stock=0, ringfence=fence)
    ids: list[str] = []
    capture: list[float] = []
    at_intake: Counter[str] = Counter()  # lines turned away at intake (409), by rule

    async def one(n: int) -> None:
        channel = ("web", "market", "app")[n % 3]
        t0 = time.perf_counter()
        order_id = await shop.buy(channel, f"flash-{n}", "FLASH", at_intake)
        if order_id is not None:
            ids.append(order_id)
            capture.append((time.perf_counter() - t0) * 1000)

    seconds, failed = await run_jobs(concurrency, orders, one)
    settled = [await shop.until(i, ("allocated", "cancelled")) for i in ids]
    accepted = sum(ln.reserved + ln.shipped for o in settled for ln in o.lines)
    by_channel: dict[str, int] = defaultdict(int)
    for o in settled:
        by_channel[o.channel] += sum(ln.reserved for ln in o.lines)
    inv = await shop.admin.get_stock("FLASH")
    negative = [loc for loc in inv.locations if loc.available < 0 or loc.reserved > loc.on_hand]
    cap = sorted(capture)
    return {
        "stock": stock,
        "orders": orders,
        "accepted_units": accepted,
        "oversold": max(0, accepted - stock) + len(negative),
        "unsold_while_buyers_remain": max(0, min(stock, orders) - accepted),
        "refusals_by_reason": dict(Counter(_refusals(shop)) + at_intake),
        "by_channel": dict(by_channel),
        "capture_seconds": round(seconds, 2),
        "orders_per_s": round(len(ids) / seconds, 1) if seconds else 0.0,
        "capture_ms": {q: round(percentile(cap, p), 1) for q, p in (("p50", 0.5), ("p99", 0.99))},
        "failed_requests": failed,
    }


def _refusals(shop: Shop) -> dict[str, int]:
    """The flash sale's refused lines by the rule that refused them (their timeline events)."""
    import psycopg

    with psycopg.connect(shop.stack.database_url) as conn:
        rows = conn.execute(
            "SELECT detail->>'reason', count(*) FROM order_event WHERE event = 'line_refused'"
            " AND order_id LIKE 'order-%-flash-%' GROUP BY 1"
        ).fetchall()
    return {str(reason): int(n) for reason, n in rows}


def _ceiling_cpu(
    before: dict[str, float], after: dict[str, float], worker_seconds: float
) -> dict[str, float]:
    """CPU seconds the no-op cost between two readings: the server, its worker and its client.
    The client (this process: start, updates, result) is counted as ours' load generator is,
    so that each side carries the cost of what drives it."""
    return {
        "temporal": after.get("temporal", 0) - before.get("temporal", 0),
        "ceiling_worker": worker_seconds,
        "client": after.get("load_generator", 0) - before.get("load_generator", 0),
    }


async def measure_level(
    stack: DevStack,
    shop: Shop,
    client: Client,
    shape: Shape,
    ceiling: CeilingWorker,
    c: int,
    per_level: int,
) -> Point:
    """Ours at concurrency `c`, then the ceiling at the same concurrency, then the ceiling at
    ours' rate, with the CPU and database work of each."""
    cpu0, db0 = cpu_seconds(stack), await db_counters(shop)
    ceiling_cpu = ceiling.cpu_seconds()
    point = await measure_ours(shop, c, per_level, f"c{c}")
    cpu1, db1 = cpu_seconds(stack), await db_counters(shop)
    point.ceiling_wf_per_s = await measure_ceiling(client, ceiling, shape, c, per_level, f"c{c}")
    cpu2, ceiling_cpu2 = cpu_seconds(stack), ceiling.cpu_seconds()
    rate = await measure_ceiling_at_rate(client, ceiling, shape, point.orders_per_s, per_level, f"r{c}")
    cpu3, ceiling_cpu3 = cpu_seconds(stack), ceiling.cpu_seconds()
    point.cpu_ms_per_order = {k: round((cpu1[k] - cpu0.get(k, 0)) * 1000 / per_level, 1) for k in cpu1}
    point.db_per_order = {k: round((db1[k] - db0[k]) / per_level, 1) for k in db1}
    ceiling_parts = _ceiling_cpu(cpu1, cpu2, ceiling_cpu2 - ceiling_cpu)
    point.ceiling_cpu_ms_per_wf = {k: round(v * 1000 / per_level, 1) for k, v in ceiling_parts.items()}
    point.ratio = round(point.orders_per_s / point.ceiling_wf_per_s, 3) if point.ceiling_wf_per_s else 0.0
    ours_cpu, ceiling_total = sum(point.cpu_ms_per_order.values()), sum(ceiling_parts.values())
    point.cpu_ratio = round(ceiling_total * 1000 / per_level / ours_cpu, 3) if ours_cpu else 0.0
    ours_server = point.cpu_ms_per_order.get("temporal", 0)
    at_rate_parts = _ceiling_cpu(cpu2, cpu3, ceiling_cpu3 - ceiling_cpu2)
    same_rate = at_rate_parts["temporal"] * 1000 / per_level
    same_rate_total = sum(at_rate_parts.values()) * 1000 / per_level
    point.ceiling_at_our_rate = {
        "wf_per_s": rate,
        "temporal_cpu_ms_per_wf": round(same_rate, 1),
        "cpu_ms_per_wf": round(same_rate_total, 1),
    }
    if ours_cpu:
        point.cpu_ratio_at_our_rate = round(same_rate_total / ours_cpu, 3)
    if ours_server:
        point.server_ratio = round(point.ceiling_cpu_ms_per_wf["temporal"] / ours_server, 3)
        point.server_ratio_at_our_rate = round(same_rate / ours_server, 3)
    return point


async def run(
    levels: list[int],
    per_level: int,
    flash: tuple[int, int, int] | None,
    open_loop: tuple[float | None, float] | None = None,
) -> dict[str, Any]:
    """`open_loop`: (orders/s or None for half the best closed-loop level's, seconds)."""
    with tempfile.TemporaryDirectory(prefix="omniflow-bench-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
        ceiling = await start_ceiling_worker(stack)
        shop = Shop(stack)
        try:
            client = await Client.connect(stack.temporal_address)
            await shop.setup()
            # Warm-up and the shape of one order (what the ceiling must match).
            await measure_ours(shop, 2, 6, "warm")
            shape, trips = await order_shape(client, "order-web-warm-0")
            await measure_ceiling(client, ceiling, shape, 2, 6, "warm")
            ceiling_trips = (await order_shape(client, "ceiling-warm-0"))[1]
            if ceiling_trips["workflow_tasks"] != trips["workflow_tasks"]:
                print(
                    f"  the ceiling's round trips differ from an order's: {ceiling_trips} vs {trips}",
                    flush=True,
                )
            points = []
            for c in levels:
                point = await measure_level(stack, shop, client, shape, ceiling, c, per_level)
                points.append(point)
                print(
                    f"  C={c:<3} ours {point.orders_per_s:7.2f}/s  ceiling {point.ceiling_wf_per_s:7.2f}/s  "
                    f"ratio {point.ratio:.2f}  capture p50 {point.capture_ms['p50']} ms  cpu_ratio "
                    f"{point.cpu_ratio} ({point.cpu_ratio_at_our_rate} at our rate)  server_ratio "
                    f"{point.server_ratio} ({point.server_ratio_at_our_rate} at our rate)",
                    flush=True,
                )
            sale = await flash_sale(shop, *flash) if flash else None
            steady = None
            if open_loop:
                rate = open_loop[0] or max(p.orders_per_s for p in points) / 2
                steady = await _open_loop(stack, shop, rate, open_loop[1])
        finally:
            await shop.close()
            ceiling.stop()
            stack.stop()
    best = max(points, key=lambda p: p.orders_per_s)
    return {
        "orders_per_s": best.orders_per_s,
        "ceiling_wf_per_s": best.ceiling_wf_per_s,
        "ratio": best.ratio,
        "cpu_ratio": best.cpu_ratio,
        "server_ratio": best.server_ratio,
        "cpu_ratio_at_our_rate": best.cpu_ratio_at_our_rate,
        "server_ratio_at_our_rate": best.server_ratio_at_our_rate,
        "at_concurrency": best.concurrency,
        "points": [asdict(p) for p in points],
        "round_trips_per_order": trips,
        "ceiling_shape": asdict(shape),
        "ceiling_round_trips": ceiling_trips,
        "flash_sale": sale,
        "open_loop": steady,
    }


async def _open_loop(stack: DevStack, shop: Shop, rate: float, seconds: float) -> dict[str, Any]:
    cpu0 = cpu_seconds(stack)
    result = await bench_open_loop.measure(shop, rate, seconds, "open")
    cpu1 = cpu_seconds(stack)
    done = max(1, result["orders"] - result["failed"])
    result["cpu_ms_per_order"] = {k: round((cpu1[k] - cpu0.get(k, 0)) * 1000 / done, 1) for k in cpu1}
    return result
