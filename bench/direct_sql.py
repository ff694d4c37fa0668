"""What one textual statement costs the client, by the path it takes:
`python -m bench.direct_sql [--transactions N]` (an embedded Postgres of its own).

Each transaction is what an order step looks like to the database: 5 keyed reads and 15
keyed writes of a 1,000-row table. It runs, in alternating rounds on one connection pool:

- `sqlalchemy`: `text()` through SQLAlchemy's async execution (the path before
  runtime.direct_sql);
- `direct`: the same `text()` through runtime.direct_sql (what the API and the worker use);
- `psycopg`: the same SQL sent by psycopg itself, its own transaction (the floor).

Printed per path: client CPU ms per transaction and µs per statement (BEGIN and COMMIT
included), Postgres CPU ms per transaction, wall ms per transaction, and each path's client
CPU as a ratio of SQLAlchemy's."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime.db import libpq_url, make_async_engine, sqlalchemy_url
from runtime.embedded_pg import EmbeddedPostgres
from runtime.ports import free_port

READS, WRITES = 5, 15
ROWS = 1000
_READ = "SELECT * FROM bench_row WHERE id = :id"
_WRITE = "UPDATE bench_row SET v = v + 1, s = :s WHERE id = :id"

Step = Callable[[int], Awaitable[None]]


def _steps(plain: AsyncEngine, direct: AsyncEngine, raw: psycopg.AsyncConnection[Any]) -> dict[str, Step]:
    def via(engine: AsyncEngine) -> Step:
        async def step(i: int) -> None:
            async with engine.begin() as conn:
                for k in range(READS):
                    (await conn.execute(text(_READ), {"id": (i * 7 + k) % ROWS + 1})).all()
                for k in range(WRITES):
                    await conn.execute(text(_WRITE), {"id": (i * 13 + k) % ROWS + 1, "s": "y"})

        return step

    read, write = _READ.replace(":id", "%(id)s"), _WRITE.replace(":id", "%(id)s").replace(":s", "%(s)s")

    async def psycopg_step(i: int) -> None:
        async with raw.transaction():
            for k in range(READS):
                await (await raw.execute(read, {"id": (i * 7 + k) % ROWS + 1})).fetchall()
            for k in range(WRITES):
                await raw.execute(write, {"id": (i * 13 + k) % ROWS + 1, "s": "y"})

    return {"sqlalchemy": via(plain), "direct": via(direct), "psycopg": psycopg_step}


def _postgres_cpu(postmaster: psutil.Process) -> float:
    t = postmaster.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in postmaster.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


async def _measure(pg: EmbeddedPostgres, transactions: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    plain = create_async_engine(sqlalchemy_url(pg.url), pool_size=2)
    direct = make_async_engine(pg.url, pool_size=2, application_name="bench-direct")
    raw = await psycopg.AsyncConnection.connect(libpq_url(pg.url))
    async with direct.begin() as conn:
        await conn.execute(
            text("CREATE TABLE bench_row (id int PRIMARY KEY, v int NOT NULL, s text NOT NULL)")
        )
        await conn.execute(text(f"INSERT INTO bench_row SELECT g, 0, 'x' FROM generate_series(1, {ROWS}) g"))
    postmaster = psutil.Process(int((pg.data_dir / "postmaster.pid").read_text().split()[0]))
    me = psutil.Process()
    out: dict[str, list[dict[str, float]]] = {}
    try:
        steps = _steps(plain, direct, raw)
        for _ in range(rounds):
            for name, step in steps.items():
                for i in range(30):  # warm: pools, prepared statements
                    await step(i)
                c0, p0, w0 = me.cpu_times(), _postgres_cpu(postmaster), time.perf_counter()
                for i in range(transactions):
                    await step(i)
                c1, p1, w1 = me.cpu_times(), _postgres_cpu(postmaster), time.perf_counter()
                client = (c1.user + c1.system - c0.user - c0.system) / transactions * 1000
                out.setdefault(name, []).append(
                    {
                        "client_ms": client,
                        "client_us_per_statement": client / (READS + WRITES + 2) * 1000,
                        "postgres_ms": (p1 - p0) / transactions * 1000,
                        "wall_ms": (w1 - w0) / transactions * 1000,
                    }
                )
    finally:
        await raw.close()
        await plain.dispose()
        await direct.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transactions", type=int, default=400, help="per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="omniflow-direct-sql-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "data", free_port(), database="direct_sql", durable=False)
        with pg:
            import uvloop

            results = uvloop.run(_measure(pg, args.transactions, args.rounds))
    base = [r["client_ms"] for r in results["sqlalchemy"]]
    print(
        f"{READS} reads + {WRITES} writes per transaction, {args.transactions} transactions x {args.rounds} rounds"
    )
    print(
        "| path | client CPU ms/txn | µs per statement | Postgres CPU ms/txn | wall ms/txn | client vs sqlalchemy |"
    )
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        cells = [" / ".join(f"{r[k]:.2f}" for r in runs) for k in ("client_ms",)]
        per = " / ".join(f"{r['client_us_per_statement']:.0f}" for r in runs)
        pg_ms = " / ".join(f"{r['postgres_ms']:.2f}" for r in runs)
        wall = " / ".join(f"{r['wall_ms']:.2f}" for r in runs)
        ratio = " / ".join(f"{r['client_ms'] / b:.2f}" for r, b in zip(runs, base, strict=True))
        print(f"| {name} | {cells[0]} | {per} | {pg_ms} | {wall} | {ratio} |")


if __name__ == "__main__":
    main()
