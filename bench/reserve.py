"""Reservations per second on one hot SKU: `models.stock.reserve` one at a time and through
the group-reservation batcher, against a bare guarded UPDATE, on the same durable Postgres,
in the same run.

    .venv/bin/python -m bench.reserve [--seconds 5] [--clients 1,8,32,64] [--profile 300]

For each client count C, the three workloads run closed-loop in a
single/batched/bare/bare/batched/single pattern of half-windows (so drift during the run hits
them equally):

- single (before): each client on its own connection, one transaction per call,
  `stock.reserve(conn, <unique key>, "web", [1 × TEE at DC-EAST])`: the real core with its SKU
  locks, ATP rules (safety stock, a ring-fence), reservation rows, channel counters,
  availability and change feed;
- batched (after): the same request through `ReservationBatcher.reserve` (its own key, its
  own result), which combines the requests queued for the SKU into one transaction;
- bare: each client on its own connection,
  `UPDATE bare_stock SET reserved = reserved + 1 WHERE id = 1 AND qty - reserved >= 1`.

Then a single-client profile: statements per reservation, and how long the hot SKU stays
locked per reservation — one at a time, and in a batch of 64 — which bounds throughput under
contention. Results: a table, and bench/results/reserve.json."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.common import (
    Run,
    StatementProfile,
    closed_loop,
    closed_loop_calls,
    durable_postgres,
    machine,
    server_settings,
    write_json,
)
from models import stock
from models.stock import ReserveLine, ReserveRequest
from models.stock.batcher import ReservationBatcher
from runtime.db import make_async_engine
from tests.factories import receive, set_policy, standard_catalog

HOT_STOCK = 10_000_000
LINE = [ReserveLine("1", "TEE", "DC-EAST", 1)]
BARE = text("UPDATE bare_stock SET reserved = reserved + 1 WHERE id = 1 AND qty - reserved >= 1 RETURNING id")
TARGET_RATIO = 1.0  # batched against bare, at 32 and 64 clients
BATCH = 64  # the batch the profile times
console = Console(width=150)


async def seed(url: str) -> None:
    eng = make_async_engine(url, pool_size=2)
    try:
        await standard_catalog(eng)
        await receive(eng, "TEE", "DC-EAST", HOT_STOCK, key="bench:stock")
        async with eng.begin() as conn:
            await set_policy(conn, "web", "TEE", safety=5)
            await set_policy(conn, "marketplace", "TEE", ringfence={"DC-EAST": 1000})
            await conn.execute(
                text(
                    "CREATE TABLE bare_stock (id int PRIMARY KEY, qty bigint NOT NULL, "
                    "reserved bigint NOT NULL DEFAULT 0, CHECK (reserved >= 0 AND reserved <= qty))"
                )
            )
            await conn.execute(text("INSERT INTO bare_stock (id, qty) VALUES (1, :q)"), {"q": HOT_STOCK})
    finally:
        await eng.dispose()


def single(tag: str) -> Callable[[AsyncConnection, int, int], Any]:
    async def call(conn: AsyncConnection, client: int, n: int) -> bool:
        await stock.reserve(conn, f"bench:{tag}:{client}:{n}", "web", LINE)
        return True

    return call


def batched(batcher: ReservationBatcher, tag: str) -> Callable[[int, int], Any]:
    async def call(client: int, n: int) -> bool:
        await batcher.reserve(f"bench:{tag}:{client}:{n}", "web", LINE)
        return True

    return call


async def bare(conn: AsyncConnection, client: int, n: int) -> bool:
    return (await conn.execute(BARE)).first() is not None


async def measure(url: str, clients: int, seconds: float, run_id: str) -> dict[str, Any]:
    eng = make_async_engine(url, pool_size=clients)
    batcher_eng = make_async_engine(url, pool_size=4)
    batcher = ReservationBatcher(batcher_eng)
    tag = f"{run_id}:{clients}"
    try:
        half = seconds / 2
        s1 = await closed_loop(eng, clients, half, single(f"{tag}:s1"))
        g1 = await closed_loop_calls(clients, half, batched(batcher, f"{tag}:g1"))
        b1 = await closed_loop(eng, clients, half, bare)
        b2 = await closed_loop(eng, clients, half, bare)
        g2 = await closed_loop_calls(clients, half, batched(batcher, f"{tag}:g2"))
        s2 = await closed_loop(eng, clients, half, single(f"{tag}:s2"))
        sizes = batcher.batch_sizes
        return {
            "single": s1.merge(s2),
            "batched": g1.merge(g2),
            "bare": b1.merge(b2),
            "mean_batch": sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values())),
        }
    finally:
        await batcher.aclose()
        await batcher_eng.dispose()
        await eng.dispose()


# -- where the time goes ---------------------------------------------------------------


async def _timed(eng: Any, conn: AsyncConnection, n: int, work: Callable[[int], Any]) -> dict[str, Any]:
    """Run `work(i)` n times, one transaction each; per transaction: time, commit, statements,
    and how long the SKU locks were held (from the end of the lock statement to the commit)."""
    total = body = locked = locked_sql = 0.0
    locked_statements = 0
    with StatementProfile(eng) as prof:
        for i in range(n):
            mark, lock_mark = len(prof.log), len(prof.lock_ends)
            t0 = time.perf_counter()
            async with conn.begin():
                await work(i)
                t1 = time.perf_counter()
            t2 = time.perf_counter()
            first_lock = prof.lock_ends[lock_mark] if len(prof.lock_ends) > lock_mark else t1
            total += t2 - t0
            body += t1 - t0
            locked += t2 - first_lock
            under = [(start, end) for _, start, end in prof.log[mark:] if start >= first_lock]
            locked_statements += len(under)
            locked_sql += sum(end - start for start, end in under)
    sql_ms = sum(prof.ms.values())
    return {
        "ms_per_transaction": total * 1000 / n,
        "commit_ms": (total - body) * 1000 / n,
        "statements_per_transaction": sum(prof.count.values()) / n,
        "statement_ms": sql_ms / n,
        "python_ms": (body * 1000 - sql_ms) / n,
        "lock_held_ms": locked * 1000 / n,
        "statements_under_lock": locked_statements / n,
        "statement_ms_under_lock": locked_sql * 1000 / n,
        "python_ms_under_lock": (locked - locked_sql - (total - body)) * 1000 / n,
        "statements": sorted(
            ({"sql": k, "per_call": prof.count[k] / n, "ms": prof.ms[k] / n} for k in prof.count),
            key=lambda st: -st["ms"],
        ),
    }


async def profile(url: str, n: int, run_id: str) -> dict[str, Any]:
    eng = make_async_engine(url, pool_size=1)
    out: dict[str, Any] = {"reservations": n, "batch": BATCH}
    try:
        async with eng.connect() as conn:
            for i in range(10):  # warm: prepared statements, caches
                async with conn.begin():
                    await stock.reserve(conn, f"bench:{run_id}:warm:{i}", "web", LINE)
                    await bare(conn, 0, i)

            async def one(i: int) -> None:
                await stock.reserve(conn, f"bench:{run_id}:profile:{i}", "web", LINE)

            async def many(i: int) -> None:
                reqs = [ReserveRequest(f"bench:{run_id}:batch:{i}:{j}", "web", LINE) for j in range(BATCH)]
                await stock.apply_batch(conn, reqs)

            async def bare_one(i: int) -> None:
                await bare(conn, 0, i)

            out["single"] = await _timed(eng, conn, n, one)
            out["batch_of_64"] = await _timed(eng, conn, max(1, n // BATCH), many)
            out["bare"] = await _timed(eng, conn, n, bare_one)
    finally:
        await eng.dispose()
    single_ms = out["single"]["lock_held_ms"]
    batch_ms = out["batch_of_64"]["lock_held_ms"] / BATCH
    bare_ms = out["bare"]["ms_per_transaction"]  # the row lock: from the UPDATE to the commit
    out["lock_held_ms_per_reservation"] = {"single": single_ms, "batched": batch_ms, "bare": bare_ms}
    out["ceiling_per_s"] = {k: 1000 / v for k, v in out["lock_held_ms_per_reservation"].items()}
    return out


# -- main --------------------------------------------------------------------------------


def report(rows: list[dict[str, Any]], prof: dict[str, Any] | None, settings: dict[str, str]) -> None:
    table = Table(title=f"Reservations/s on one hot SKU (durable Postgres: {settings})")
    cols = ["C", "single/s", "batched/s", "bare/s", "single÷bare", "batched÷bare", "mean batch"]
    cols += ["single p50/p99 ms", "batched p50/p99 ms", "bare p50/p99 ms"]
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["clients"]),
            f"{r['single_per_s']:.0f}",
            f"{r['batched_per_s']:.0f}",
            f"{r['bare_per_s']:.0f}",
            f"{r['single_ratio']:.2f}",
            f"{r['batched_ratio']:.2f}",
            f"{r['mean_batch']:.1f}",
            f"{r['single_p50_ms']:.1f} / {r['single_p99_ms']:.1f}",
            f"{r['batched_p50_ms']:.1f} / {r['batched_p99_ms']:.1f}",
            f"{r['bare_p50_ms']:.1f} / {r['bare_p99_ms']:.1f}",
        )
    console.print(table)
    for r in rows:
        if r["clients"] in (32, 64):
            ok = r["batched_ratio"] >= TARGET_RATIO
            console.print(
                f"[bold {'green' if ok else 'red'}]batched ÷ bare at {r['clients']} clients: "
                f"{r['batched_ratio']:.2f} (target ≥ {TARGET_RATIO}) — {'met' if ok else 'NOT met'}[/]"
            )
    if prof is None:
        return
    held = prof["lock_held_ms_per_reservation"]
    ceiling = prof["ceiling_per_s"]
    o, g = prof["single"], prof["batch_of_64"]
    console.print(
        f"\n[bold]One client[/]: a reservation {o['ms_per_transaction']:.2f} ms "
        f"({o['statements_per_transaction']:.0f} statements, {o['statement_ms']:.2f} ms in statements, "
        f"{o['python_ms']:.2f} ms Python, commit {o['commit_ms']:.2f} ms); a batch of {prof['batch']} "
        f"{g['ms_per_transaction']:.2f} ms ({g['statements_per_transaction']:.0f} statements, "
        f"{g['python_ms']:.2f} ms Python); bare {prof['bare']['ms_per_transaction']:.2f} ms."
    )
    console.print(
        f"The hot SKU stays locked {held['single']:.3f} ms per reservation one at a time, "
        f"{held['batched']:.3f} ms in a batch of {prof['batch']} (bare: the row, {held['bare']:.3f} ms): "
        f"ceilings ≈ {ceiling['single']:.0f}/s, {ceiling['batched']:.0f}/s and {ceiling['bare']:.0f}/s."
    )
    stmts = Table(title="single: statements (per reservation)")
    stmts.add_column("statement")
    stmts.add_column("count", justify="right")
    stmts.add_column("ms", justify="right")
    for st in o["statements"]:
        stmts.add_row(st["sql"], f"{st['per_call']:.0f}", f"{st['ms']:.3f}")
    console.print(stmts)


async def main_async(seconds: float, clients: list[int], profile_n: int) -> dict[str, Any]:
    with durable_postgres() as pg:
        settings = server_settings(pg.url, ("fsync", "synchronous_commit", "max_connections"))
        console.print(f"Postgres at {pg.url} {settings}; seeding…")
        await seed(pg.url)
        run_id = uuid.uuid4().hex[:8]
        rows = []
        for c in clients:
            m = await measure(pg.url, c, seconds, run_id)
            row: dict[str, Any] = {"clients": c, "mean_batch": m["mean_batch"]}
            for name in ("single", "batched", "bare"):
                run: Run = m[name]
                row[f"{name}_per_s"] = run.per_second
                row[f"{name}_p50_ms"] = run.p(0.50)
                row[f"{name}_p99_ms"] = run.p(0.99)
                row[f"{name}_done"] = run.done
                row[f"{name}_refused"] = run.failed
            for name in ("single", "batched"):
                row[f"{name}_ratio"] = row[f"{name}_per_s"] / row["bare_per_s"] if row["bare_per_s"] else 0.0
            rows.append(row)
            console.print(
                f"C={c:>3}: single {row['single_per_s']:.0f}/s, batched {row['batched_per_s']:.0f}/s "
                f"(mean batch {row['mean_batch']:.1f}), bare {row['bare_per_s']:.0f}/s: "
                f"{row['single_ratio']:.2f} → {row['batched_ratio']:.2f} of bare"
            )
        prof = await profile(pg.url, profile_n, run_id) if profile_n else None
        report(rows, prof, settings)
        return {
            "seconds_per_workload": seconds,
            "clients": clients,
            "hot_stock": HOT_STOCK,
            "postgres": settings,
            "machine": machine(),
            "rows": rows,
            "profile": prof,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per workload and client count")
    parser.add_argument("--clients", default="1,8,32,64", help="comma-separated client counts")
    parser.add_argument("--profile", type=int, default=300, help="reservations in the profile pass (0: none)")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    result = asyncio.run(main_async(args.seconds, clients, args.profile))
    path = write_json("reserve.json", result)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
