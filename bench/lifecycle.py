"""Order throughput against the bare-Temporal ceiling, and a flash sale, on one `omniflow dev`
stack (embedded Postgres, the Temporal dev server with file persistence, the worker process
and the API), all measured in the same run.

- **ours**: N orders captured over HTTP at concurrency C, each driven by a simulated
  warehouse (poll until allocated, pick, pack, ship, poll until completed): orders per
  second, capture latency percentiles, per-stage durations.
- **ceiling**: `bench.ceiling.CeilingWorkflow` with the same Temporal round trips as one of
  our orders (counted from a real order's history in this run), at the same concurrency,
  on the same server, with the same worker settings.
- **flash sale**: three channels, one SKU with little stock, many more concurrent orders
  than units: `{stock, accepted_units, oversold}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from temporalio.client import Client, WorkflowHistory

from bench.ceiling import Shape
from bench.common import NYC, percentile
from bench.stack import DevStack

CEILING_QUEUE = "bench-ceiling"
PACKAGE = {"weight_g": 800, "length_mm": 300, "width_mm": 200, "height_mm": 100}


def cpu_seconds(stack: DevStack) -> dict[str, float]:
    """CPU time so far of each part of the stack (and of this load generator)."""
    out: dict[str, float] = defaultdict(float)
    data = str(stack.data_dir)
    for proc in psutil.process_iter(["cmdline", "cpu_times", "pid"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            times = proc.info["cpu_times"]
        except psutil.Error:
            continue
        if times is None:
            continue
        part = None
        if proc.info["pid"] == os.getpid():
            part = "load_generator"
        elif "-m worker" in cmd and "python" in cmd:
            part = "worker"
        elif "-m api" in cmd and "python" in cmd:
            part = "api"
        elif "temporal server start-dev" in cmd and data in cmd:
            part = "temporal"
        elif cmd.startswith("postgres:"):  # a backend or helper, while it lives
            part = "postgres"
        elif data in cmd and "postgres" in cmd:  # the postmaster: with the backends that have exited
            part = "postgres"
            out[part] += times.children_user + times.children_system
        if part:
            out[part] += times.user + times.system
    return dict(out)


async def db_counters(shop: Shop) -> dict[str, int]:
    """Commits and row writes of the database so far (pg_stat_database)."""
    import psycopg

    with psycopg.connect(shop.stack.database_url) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = 'omniflow'"
        ).fetchone()
    assert row is not None
    return {"commits": int(row[0]), "rows_inserted": int(row[1]), "rows_updated": int(row[2])}


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
    db_per_order: dict[str, float] = field(default_factory=dict)  # commits and row writes
    ceiling_cpu_ms_per_wf: dict[str, float] = field(default_factory=dict)
    # Where every process shares the same cores, throughput follows CPU per unit of work:
    # `cpu_ratio` = the ceiling's CPU per workflow ÷ ours per order is what `ratio` tends to
    # when both are CPU-bound. `server_ratio` = the Temporal server's CPU per ceiling
    # workflow ÷ per order: the ratio where the Temporal server is the bottleneck (its own
    # machines, as in production), which is the premise of "the ceiling".
    cpu_ratio: float = 0.0
    server_ratio: float = 0.0


class Shop:
    """The stack as a channel and a warehouse use it."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.admin = httpx.AsyncClient(base_url=stack.api, headers=stack.headers, timeout=60.0, limits=limits)
        self.channel: dict[str, httpx.AsyncClient] = {}
        self.warehouse: httpx.AsyncClient | None = None

    async def key(self, role: str, channel: str | None = None) -> httpx.AsyncClient:
        body = {
            "role": role,
            "name": f"bench {role} {channel or ''}",
            **({"channel": channel} if channel else {}),
        }
        r = await self.admin.post("/v1/api-keys", json=body)
        r.raise_for_status()
        return httpx.AsyncClient(
            base_url=self.stack.api, headers={"Authorization": f"Bearer {r.json()['key']}"}, timeout=60.0,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )  # fmt: skip

    async def setup(self) -> None:
        for path, body in (
            ("/v1/skus", {"code": "TEE", "name": "Tee", "unit_cost": 600, "price": 2500}),
            ("/v1/skus", {"code": "FLASH", "name": "Limited sneaker", "unit_cost": 5000, "price": 12000}),
            ("/v1/locations", {"code": "DC-EAST", "name": "East", "type": "dc", "lat": 40.7, "lon": -74.2,
                               "ship_cost": 450, "priority": 1}),
            ("/v1/locations", {"code": "DC-WEST", "name": "West", "type": "dc", "lat": 34.1, "lon": -117.7,
                               "ship_cost": 380, "priority": 2}),
            ("/v1/channels", {"code": "web", "type": "web", "locations": ["DC-EAST", "DC-WEST"]}),
            ("/v1/channels", {"code": "market", "type": "marketplace", "locations": ["DC-EAST", "DC-WEST"],
                              "sourcing_rule": "cheapest"}),
            ("/v1/channels", {"code": "app", "type": "web", "locations": ["DC-EAST"], "sourcing_rule": "priority"}),
        ):  # fmt: skip
            (await self.admin.post(path, json=body)).raise_for_status()
        await self.adjust("TEE", "DC-EAST", 1_000_000)
        for channel in ("web", "market", "app"):
            self.channel[channel] = await self.key("channel", channel)
        self.warehouse = await self.key("warehouse")

    async def adjust(self, sku: str, location: str, delta: int) -> None:
        r = await self.admin.post(
            "/v1/inventory/adjustments", headers={"Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
            json={"sku": sku, "location": location, "status": "sellable", "delta": delta, "reason": "initial"},
        )  # fmt: skip
        r.raise_for_status()

    async def place(
        self, channel: str, external_id: str, sku: str, qty: int, **extra: Any
    ) -> tuple[str, float, str]:
        price = 2500
        body = {"channel": channel, "external_id": external_id,
                "customer": {"id": f"c-{external_id}", "email": "b@example.com"}, "ship_to": NYC,
                "lines": [{"sku": sku, "qty": qty, "unit_price": price}], "shipping_amount": 500, "tax_amount": 200,
                "payment": {"method": "card", "status": "authorized", "reference": external_id,
                            "amount": qty * price + 700}, **extra}  # fmt: skip
        t0 = time.perf_counter()
        r = await self.channel[channel].post(
            "/v1/orders", json=body, headers={"Idempotency-Key": external_id}
        )
        took = (time.perf_counter() - t0) * 1000
        r.raise_for_status()
        return str(r.json()["id"]), took, str(r.json()["created_at"])

    async def until(self, order_id: str, statuses: tuple[str, ...], timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            r = await self.admin.get(f"/v1/orders/{order_id}")
            r.raise_for_status()
            order: dict[str, Any] = r.json()
            if order["status"] in statuses:
                return order
            if time.monotonic() > deadline:
                raise TimeoutError(f"{order_id} stuck in {order['status']}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    async def fulfil(self, shipment: dict[str, Any]) -> None:
        assert self.warehouse is not None
        sid = shipment["id"]
        lines = [{"sku": ln["sku"], "qty": ln["qty"]} for ln in shipment["lines"]]
        for step, body in (("pick", {"lines": lines}), ("pack", {"packages": [{**PACKAGE, "lines": lines}]}),
                           ("ship", {"carrier": "UPS", "tracking": f"1Z-{sid}"})):  # fmt: skip
            r = await self.warehouse.post(f"/v1/shipments/{sid}/{step}", json=body)
            r.raise_for_status()

    async def close(self) -> None:
        for client in (self.admin, self.warehouse, *self.channel.values()):
            if client is not None:
                await client.aclose()


class Floor:
    """The simulated warehouse and the completion watcher: one loop polls `GET /v1/pick-tasks`
    and works every new shipment (pick, pack, ship) concurrently; another lists completed
    orders. Batch reads, as a warehouse and a channel would run them, so the benchmark does not
    load the API with one poll per order."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.started: set[str] = set()
        self.shipped_at: dict[str, float] = {}
        self.allocated_at: dict[str, float] = {}
        self.completed: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.completed_at: dict[str, float] = {}
        self.stages: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.in_flight: dict[str, str] = {}  # order id -> its created_at (server clock)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(self._pick_loop(), self._completion_loop())

    def stop(self) -> None:
        self._stop.set()

    async def _pick_loop(self) -> None:
        assert self.shop.warehouse is not None
        work: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            r = await self.shop.warehouse.get("/v1/pick-tasks", params={"max_lines": 500})
            now = time.perf_counter()
            for wave in r.json()["items"]:
                for shp in wave["shipments"]:
                    if shp["id"] not in self.started:
                        self.started.add(shp["id"])
                        self.allocated_at.setdefault(shp["order_id"], now)
                        task = asyncio.create_task(self._work(shp))
                        work.add(task)
                        task.add_done_callback(work.discard)
            await asyncio.sleep(0.05)
        await asyncio.gather(*work)

    async def _work(self, shp: dict[str, Any]) -> None:
        try:
            t0 = time.perf_counter()
            await self.shop.fulfil({"id": shp["id"], "lines": shp["lines"]})
            self.shipped_at[shp["order_id"]] = time.perf_counter()
            self.stages["pick_pack_ship"].append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            self.errors.append(f"{shp['id']}: {exc!r}"[:200])

    async def _completion_loop(self) -> None:
        while not self._stop.is_set():
            if not self.in_flight:
                await asyncio.sleep(0.05)
                continue
            # Only orders at least as new as the oldest one still in flight: one short page.
            params: dict[str, Any] = {
                "status": "completed",
                "limit": 500,
                "created_from": min(self.in_flight.values()),
            }
            cursor = None
            while True:
                if cursor:
                    params["cursor"] = cursor
                page = (await self.shop.admin.get("/v1/orders", params=params)).json()
                now = time.perf_counter()
                for order in page["items"]:
                    event = self.completed[order["id"]]
                    if not event.is_set():
                        self.completed_at[order["id"]] = now
                        self.in_flight.pop(order["id"], None)
                        event.set()
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            await asyncio.sleep(0.1)


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


async def _closed_loop(concurrency: int, total: int, one: Any) -> tuple[float, int]:
    """`concurrency` clients take the next of `total` jobs until none is left; wall seconds."""
    counter = iter(range(total))
    failed = 0

    async def client() -> None:
        nonlocal failed
        for n in counter:
            try:
                await one(n)
            except Exception as exc:
                failed += 1
                print(f"  failed: {exc!r}"[:200], file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - t0, failed


async def measure_ours(shop: Shop, concurrency: int, total: int, tag: str) -> Point:
    floor = Floor(shop)
    runner = asyncio.create_task(floor.run())
    capture: list[float] = []
    try:
        seconds, failed = await _closed_loop(
            concurrency, total, lambda n: _lifecycle(shop, floor, f"{tag}-{n}", capture)
        )
    finally:
        floor.stop()
        await runner
    for err in floor.errors[:5]:
        print(f"  warehouse: {err}", file=sys.stderr)
    cap = sorted(capture)
    return Point(
        concurrency=concurrency, orders=total, orders_per_s=round((total - failed) / seconds, 2), failed=failed,
        capture_ms={q: round(percentile(cap, p), 1) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        stages_ms={k: round(percentile(sorted(v), 0.5), 1) for k, v in floor.stages.items()},
    )  # fmt: skip


async def measure_ceiling(client: Client, shape: Shape, concurrency: int, total: int, tag: str) -> float:
    async def one(n: int) -> None:
        handle = await client.start_workflow(
            "BenchCeiling", shape, id=f"ceiling-{tag}-{n}", task_queue=CEILING_QUEUE
        )
        for i in range(shape.updates):
            await handle.execute_update("step", f"u{i}")
        for _ in range(shape.signals):
            await handle.signal("poke")
        await handle.result()

    seconds, failed = await _closed_loop(concurrency, total, one)
    return round((total - failed) / seconds, 2)


async def order_shape(client: Client, order_id: str) -> tuple[Shape, dict[str, int]]:
    """The Temporal work of one finished order, from its history."""
    return shape_of(await client.get_workflow_handle(order_id).fetch_history())


def shape_of(history: WorkflowHistory) -> tuple[Shape, dict[str, int]]:
    """Each (local) activity of a history placed before the first update, inside an update,
    or after the last one; plus the counts of every kind of round trip."""
    counts: dict[str, int] = defaultdict(int)
    accepted = completed = 0
    placed: list[tuple[str, bool, int, bool]] = []  # (kind, local, updates accepted so far, inside one)
    for event in history.events:
        kind = event.WhichOneof("attributes") or ""
        counts[kind] += 1
        if kind == "workflow_execution_update_accepted_event_attributes":
            accepted += 1
        elif kind == "workflow_execution_update_completed_event_attributes":
            completed += 1
        elif kind == "activity_task_scheduled_event_attributes" or (
            kind == "marker_recorded_event_attributes"
            and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        ):
            counts["local_activity"] += kind.startswith("marker")
            placed.append((kind, kind.startswith("marker"), accepted, accepted > completed))
    slots: dict[tuple[str, bool], int] = defaultdict(int)
    for _, local, seen, inside in placed:
        where = "before" if seen == 0 else ("after" if seen == accepted and not inside else "per")
        slots[(where, local)] += 1
    per_update = max(accepted, 1)
    shape = Shape(
        activities_before=slots[("before", False)], activities_per_update=slots[("per", False)] // per_update,
        activities_after=slots[("after", False)], updates=accepted,
        signals=counts["workflow_execution_signaled_event_attributes"], timers=counts["timer_started_event_attributes"],
        local_before=slots[("before", True)], local_per_update=slots[("per", True)] // per_update,
        local_after=slots[("after", True)],
    )  # fmt: skip
    trips = {
        "history_events": len(history.events),
        "workflow_tasks": counts["workflow_task_completed_event_attributes"],
        "activities": counts["activity_task_scheduled_event_attributes"],
        "local_activities": counts["local_activity"],
        "updates": accepted,
        "signals": counts["workflow_execution_signaled_event_attributes"],
        "timers": counts["timer_started_event_attributes"],
    }
    return shape, trips


async def flash_sale(shop: Shop, stock: int, orders: int, concurrency: int) -> dict[str, Any]:
    """Three channels race for `stock` units of one SKU (a ring-fence for the app channel);
    nothing may be promised twice."""
    await shop.adjust("FLASH", "DC-EAST", stock - 10)
    await shop.adjust("FLASH", "DC-WEST", 10)
    r = await shop.admin.put("/v1/channels/app/policies/FLASH", json={"safety_stock": 0,
                             "ringfence": [{"location": "DC-EAST", "qty": 5}]})  # fmt: skip
    r.raise_for_status()
    ids: list[str] = []

    async def one(n: int) -> None:
        channel = ("web", "market", "app")[n % 3]
        order_id, _, _ = await shop.place(channel, f"flash-{n}", "FLASH", 1, allow_backorder=False)
        ids.append(order_id)

    seconds, failed = await _closed_loop(concurrency, orders, one)
    settled = [await shop.until(i, ("allocated", "cancelled")) for i in ids]
    accepted = sum(ln["reserved"] + ln["shipped"] for o in settled for ln in o["lines"])
    by_channel: dict[str, int] = defaultdict(int)
    for o in settled:
        by_channel[o["channel"]] += sum(ln["reserved"] for ln in o["lines"])
    inv = (await shop.admin.get("/v1/inventory/FLASH")).json()
    negative = [loc for loc in inv["locations"] if loc["available"] < 0 or loc["reserved"] > loc["on_hand"]]
    return {"stock": stock, "orders": orders, "accepted_units": accepted, "oversold": max(0, accepted - stock)
            + len(negative), "by_channel": dict(by_channel), "capture_seconds": round(seconds, 2),
            "failed_requests": failed}  # fmt: skip


def _ceiling_cpu(proc: subprocess.Popen[str]) -> float:
    try:
        t = psutil.Process(proc.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def _start_ceiling_worker(stack: DevStack) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFLOW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", "--address", stack.temporal_address, "--task-queue", CEILING_QUEUE],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()  # "ceiling worker polling"
    return proc


async def run(levels: list[int], per_level: int, flash: tuple[int, int, int] | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omniflow-bench-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
        ceiling = _start_ceiling_worker(stack)
        shop = Shop(stack)
        try:
            client = await Client.connect(stack.temporal_address)
            await shop.setup()
            # Warm-up and the shape of one order (what the ceiling must match).
            await measure_ours(shop, 2, 6, "warm")
            shape, trips = await order_shape(client, "order-web-warm-0")
            await measure_ceiling(client, shape, 2, 6, "warm")
            ceiling_cpu = _ceiling_cpu(ceiling)
            points = []
            for c in levels:
                cpu0, db0 = cpu_seconds(stack), await db_counters(shop)
                point = await measure_ours(shop, c, per_level, f"c{c}")
                cpu1, db1 = cpu_seconds(stack), await db_counters(shop)
                point.ceiling_wf_per_s = await measure_ceiling(client, shape, c, per_level, f"c{c}")
                cpu2 = cpu_seconds(stack)
                point.cpu_ms_per_order = {
                    k: round((cpu1[k] - cpu0.get(k, 0)) * 1000 / per_level, 1) for k in cpu1
                }
                point.db_per_order = {k: round((db1[k] - db0[k]) / per_level, 1) for k in db1}
                ceiling_parts = {"temporal": cpu2.get("temporal", 0) - cpu1.get("temporal", 0),
                                 "ceiling_worker": _ceiling_cpu(ceiling) - ceiling_cpu}  # fmt: skip
                ceiling_cpu = _ceiling_cpu(ceiling)
                point.ceiling_cpu_ms_per_wf = {
                    k: round(v * 1000 / per_level, 1) for k, v in ceiling_parts.items()
                }
                point.ratio = (
                    round(point.orders_per_s / point.ceiling_wf_per_s, 3) if point.ceiling_wf_per_s else 0.0
                )
                ours_cpu, ceiling_total = sum(point.cpu_ms_per_order.values()), sum(ceiling_parts.values())
                point.cpu_ratio = round(ceiling_total * 1000 / per_level / ours_cpu, 3) if ours_cpu else 0.0
                ours_server = point.cpu_ms_per_order.get("temporal", 0)
                point.server_ratio = (
                    round(point.ceiling_cpu_ms_per_wf["temporal"] / ours_server, 3) if ours_server else 0.0
                )
                points.append(point)
                print(f"  C={c:<3} ours {point.orders_per_s:7.2f}/s  ceiling {point.ceiling_wf_per_s:7.2f}/s  "
                      f"ratio {point.ratio:.2f}  capture p50 {point.capture_ms['p50']} ms", flush=True)  # fmt: skip
            sale = await flash_sale(shop, *flash) if flash else None
        finally:
            await shop.close()
            ceiling.terminate()
            ceiling.wait(10)
            stack.stop()
    best = max(points, key=lambda p: p.orders_per_s)
    return {
        "orders_per_s": best.orders_per_s, "ceiling_wf_per_s": best.ceiling_wf_per_s, "ratio": best.ratio,
        "cpu_ratio": best.cpu_ratio, "server_ratio": best.server_ratio, "at_concurrency": best.concurrency, "points": [asdict(p) for p in points], "round_trips_per_order": trips,
        "ceiling_shape": asdict(shape), "flash_sale": sale,
    }  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result["points"]
    xs = [p["concurrency"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [p["ceiling_wf_per_s"] for p in pts], "o--", label="ceiling (no-op, same round trips)")
    ax.plot(xs, [p["orders_per_s"] for p in pts], "o-", label="omniflow orders (HTTP → completed)")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("per second")
    ax.set_xscale("log", base=2)
    ax.set_title("Order lifecycle throughput vs the Temporal ceiling")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    rows = ["| clients | orders/s | ceiling wf/s | ratio | CPU ms per order / per ceiling wf (cpu_ratio) | "
            "Temporal server CPU ms (server_ratio) | capture p50/p95/p99 ms | to pick task / pick-pack-ship / "
            "to completed / total ms (p50) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in result["points"]:
        c, s = p["capture_ms"], p["stages_ms"]
        ours, ceil = sum(p["cpu_ms_per_order"].values()), sum(p["ceiling_cpu_ms_per_wf"].values())
        server = f"{p['cpu_ms_per_order'].get('temporal', 0):.0f} / {p['ceiling_cpu_ms_per_wf'].get('temporal', 0):.0f}"
        rows.append(f"| {p['concurrency']} | {p['orders_per_s']} | {p['ceiling_wf_per_s']} | {p['ratio']} | "
                    f"{ours:.0f} / {ceil:.0f} ({p.get('cpu_ratio')}) | {server} ({p.get('server_ratio')}) | "
                    f"{c['p50']}/{c['p95']}/{c['p99']} | {s.get('capture_to_pick_task')} / {s.get('pick_pack_ship')}"
                    f" / {s.get('ship_to_completed_seen')} / {s.get('total')} |")  # fmt: skip
    sale = result["flash_sale"]
    rows.append("")
    if sale:
        rows.append(f"flash sale: {sale['orders']} orders for {sale['stock']} units → accepted {sale['accepted_units']}, "
                f"oversold {sale['oversold']} ({sale['by_channel']})")  # fmt: skip
    rows.append(f"round trips per order: {json.dumps(result['round_trips_per_order'])}")
    return "\n".join(rows)
