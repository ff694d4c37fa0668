"""Reservations per second on one hot SKU: `models.stock.reserve` against a bare guarded
UPDATE, on the same durable Postgres, in the same run.

    .venv/bin/python -m bench.reserve [--seconds 5] [--clients 1,8,32,64] [--profile 300]

For each client count C, both workloads run closed-loop, each client on its own connection,
one transaction per call, in an ours/bare/bare/ours pattern of half-windows (so drift during
the run hits both equally):

- ours: `stock.reserve(conn, <unique key>, "web", [1 × TEE at DC-EAST])`, the real core with
  its SKU locks, ATP rules (safety stock, a ring-fence), reservation rows, channel counters,
  availability refresh and change feed;
- bare: `UPDATE bare_stock SET reserved = reserved + 1 WHERE id = 1 AND qty - reserved >= 1`.

Then a single-client profile of both: statements per reservation, time per phase of
`reserve`, and how long the hot SKU stays locked, which bounds throughput under contention.
Results: a table, and bench/results/reserve.json."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from functools import wraps
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.common import (
    Run,
    StatementProfile,
    closed_loop,
    durable_postgres,
    machine,
    server_settings,
    write_json,
)
from models import stock
from models.stock import ReserveLine
from runtime.db import make_async_engine
from tests.factories import receive, set_policy, standard_catalog

HOT_STOCK = 10_000_000
LINE = [ReserveLine("1", "TEE", "DC-EAST", 1)]
BARE = text("UPDATE bare_stock SET reserved = reserved + 1 WHERE id = 1 AND qty - reserved >= 1 RETURNING id")
TARGET_RATIO = 0.5
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


def ours(tag: str) -> Callable[[AsyncConnection, int, int], Any]:
    async def call(conn: AsyncConnection, client: int, n: int) -> bool:
        await stock.reserve(conn, f"bench:{tag}:{client}:{n}", "web", LINE)
        return True

    return call


async def bare(conn: AsyncConnection, client: int, n: int) -> bool:
    return (await conn.execute(BARE)).first() is not None


async def measure(url: str, clients: int, seconds: float, run_id: str) -> tuple[Run, Run]:
    eng = make_async_engine(url, pool_size=clients)
    try:
        half = seconds / 2
        o1 = await closed_loop(eng, clients, half, ours(f"{run_id}:{clients}:a"))
        b1 = await closed_loop(eng, clients, half, bare)
        b2 = await closed_loop(eng, clients, half, bare)
        o2 = await closed_loop(eng, clients, half, ours(f"{run_id}:{clients}:b"))
        return o1.merge(o2), b1.merge(b2)
    finally:
        await eng.dispose()


# -- where the time goes ---------------------------------------------------------------

PHASES = ("lock_sku_set",)  # helpers `reserve` calls, when present (the rest is three statements)


class PhaseTimer:
    """Wraps the helpers `reserve` calls (in this process only) and sums their time."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> PhaseTimer:
        for name in PHASES:
            original = getattr(stock, name, None)
            if original is None:
                continue
            self._saved[name] = original

            def timed(fn: Any, label: str) -> Any:
                @wraps(fn)
                async def inner(*args: Any, **kwargs: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return await fn(*args, **kwargs)
                    finally:
                        self.ms[label] += (time.perf_counter() - t0) * 1000

                return inner

            setattr(stock, name, timed(original, name))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(stock, name, fn)


async def profile(url: str, n: int, run_id: str) -> dict[str, Any]:
    eng = make_async_engine(url, pool_size=1)
    out: dict[str, Any] = {"reservations": n}
    try:
        async with eng.connect() as conn:
            for i in range(10):  # warm: prepared statements, caches
                async with conn.begin():
                    await stock.reserve(conn, f"bench:{run_id}:warm:{i}", "web", LINE)
                    await bare(conn, 0, i)
            # ours
            total = body = locked = locked_sql = 0.0
            locked_statements = 0
            with StatementProfile(eng) as prof, PhaseTimer() as phases:
                for i in range(n):
                    mark = len(prof.log)
                    t0 = time.perf_counter()
                    async with conn.begin():
                        await stock.reserve(conn, f"bench:{run_id}:profile:{i}", "web", LINE)
                        t1 = time.perf_counter()
                    t2 = time.perf_counter()
                    first_lock = next(
                        end for label, _, end in prof.log[mark:] if "pg_advisory_xact_lock" in label
                    )
                    total += t2 - t0
                    body += t1 - t0
                    locked += t2 - first_lock
                    under = [(start, end) for _, start, end in prof.log[mark:] if start >= first_lock]
                    locked_statements += len(under)
                    locked_sql += sum(end - start for start, end in under)
            sql_ms = sum(prof.ms.values())
            out["ours"] = {
                "ms_per_reservation": total * 1000 / n,
                "commit_ms": (total - body) * 1000 / n,
                "statements_per_reservation": sum(prof.count.values()) / n,
                "statement_ms_per_reservation": sql_ms / n,
                "python_ms_per_reservation": (body * 1000 - sql_ms) / n,
                "sku_lock_held_ms": locked * 1000 / n,
                "statements_under_lock": locked_statements / n,
                "statement_ms_under_lock": locked_sql * 1000 / n,
                "python_ms_under_lock": (locked - locked_sql - (total - body)) * 1000 / n,
                "phases_ms": {k: v / n for k, v in phases.ms.items()},
                "statements": sorted(
                    ({"sql": k, "per_call": prof.count[k] / n, "ms": prof.ms[k] / n} for k in prof.count),
                    key=lambda s: -s["ms"],
                ),
            }
            # bare
            total = locked = 0.0
            with StatementProfile(eng) as prof:
                for i in range(n):
                    t0 = time.perf_counter()
                    async with conn.begin():
                        await bare(conn, 0, i)
                        start = prof.log[-1][1]
                    t2 = time.perf_counter()
                    total += t2 - t0
                    locked += t2 - start
            out["bare"] = {"ms_per_reservation": total * 1000 / n, "row_lock_held_ms": locked * 1000 / n}
    finally:
        await eng.dispose()
    o, b = out["ours"], out["bare"]
    out["ceiling_per_s"] = {"ours": 1000 / o["sku_lock_held_ms"], "bare": 1000 / b["row_lock_held_ms"]}
    return out


# -- main --------------------------------------------------------------------------------


def report(rows: list[dict[str, Any]], prof: dict[str, Any] | None, settings: dict[str, str]) -> None:
    table = Table(title=f"Reservations/s on one hot SKU (durable Postgres: {settings})")
    for col in ("C", "ours/s", "bare/s", "ratio", "ours p50 ms", "ours p99 ms", "bare p50 ms", "bare p99 ms"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["clients"]),
            f"{r['ours_per_s']:.0f}",
            f"{r['bare_per_s']:.0f}",
            f"{r['ratio']:.2f}",
            f"{r['ours_p50_ms']:.1f}",
            f"{r['ours_p99_ms']:.1f}",
            f"{r['bare_p50_ms']:.1f}",
            f"{r['bare_p99_ms']:.1f}",
        )
    console.print(table)
    at32 = next((r for r in rows if r["clients"] == 32), None)
    if at32 is not None:
        ok = at32["ratio"] >= TARGET_RATIO
        console.print(
            f"[bold {'green' if ok else 'red'}]ratio at 32 clients: {at32['ratio']:.2f} "
            f"(target ≥ {TARGET_RATIO}) — {'met' if ok else 'NOT met'}[/]"
        )
    if prof is None:
        return
    o, b = prof["ours"], prof["bare"]
    console.print(
        f"\n[bold]One client, {prof['reservations']} reservations[/]: ours {o['ms_per_reservation']:.2f} ms "
        f"({o['statements_per_reservation']:.0f} statements, {o['statement_ms_per_reservation']:.2f} ms in "
        f"statements, {o['python_ms_per_reservation']:.2f} ms Python, commit {o['commit_ms']:.2f} ms); "
        f"bare {b['ms_per_reservation']:.2f} ms."
    )
    console.print(
        f"The hot SKU stays locked {o['sku_lock_held_ms']:.2f} ms per reservation (bare: the row, "
        f"{b['row_lock_held_ms']:.2f} ms): contention ceiling ≈ {prof['ceiling_per_s']['ours']:.0f}/s vs "
        f"{prof['ceiling_per_s']['bare']:.0f}/s. Under the lock: {o['statements_under_lock']:.0f} statements "
        f"({o['statement_ms_under_lock']:.2f} ms), {o['python_ms_under_lock']:.2f} ms Python, commit "
        f"{o['commit_ms']:.2f} ms."
    )
    phases = Table(title="ours: time per phase of reserve (ms per reservation)")
    phases.add_column("phase")
    phases.add_column("ms", justify="right")
    for k, v in sorted(o["phases_ms"].items(), key=lambda kv: -kv[1]):
        phases.add_row(k, f"{v:.3f}")
    console.print(phases)
    stmts = Table(title="ours: statements (per reservation)")
    stmts.add_column("statement")
    stmts.add_column("count", justify="right")
    stmts.add_column("ms", justify="right")
    for s in o["statements"]:
        stmts.add_row(s["sql"], f"{s['per_call']:.0f}", f"{s['ms']:.3f}")
    console.print(stmts)


async def main_async(seconds: float, clients: list[int], profile_n: int) -> dict[str, Any]:
    with durable_postgres() as pg:
        settings = server_settings(pg.url, ("fsync", "synchronous_commit", "max_connections"))
        console.print(f"Postgres at {pg.url} {settings}; seeding…")
        await seed(pg.url)
        run_id = uuid.uuid4().hex[:8]
        rows = []
        for c in clients:
            o, b = await measure(pg.url, c, seconds, run_id)
            row = {
                "clients": c,
                "ours_per_s": o.per_second,
                "bare_per_s": b.per_second,
                "ratio": o.per_second / b.per_second if b.per_second else 0.0,
                "ours_p50_ms": o.p(0.50),
                "ours_p99_ms": o.p(0.99),
                "bare_p50_ms": b.p(0.50),
                "bare_p99_ms": b.p(0.99),
                "ours_done": o.done,
                "bare_done": b.done,
                "bare_refused": b.failed,
            }
            rows.append(row)
            console.print(
                f"C={c:>3}: ours {row['ours_per_s']:.0f}/s, bare {row['bare_per_s']:.0f}/s, ratio {row['ratio']:.2f}"
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
