"""What the change feed costs on a realistic table: `python -m bench.feed_cost [--events N]`
(an embedded Postgres of its own, migrated, or `--url` of an empty migrated database).

The table: N events on three channels and 500 SKUs (a fifth of the changes on ten hot ones),
six a transaction, in txid order. Then EXPLAIN (ANALYZE, BUFFERS) of

- a feed page (models.availability.FEED_PAGE, 200 events) at the start, the middle and the
  head of the web channel's feed;
- a write of one SKU's ATP (models.availability.REFRESH, rolled back): as before the
  supersede; the usual case (nothing younger committed while it waited for the SKU lock);
  and with `--younger` events on its channel (one in 20 of its SKU, what its supersede gives
  its value to), with and without ix_availability_event_sku (dropped in a transaction rolled
  back);
- for comparison, a feed page served the other way round (each event's value looked up at
  read time: the newest of its SKU at or before its position; seq stands in for a
  per-SKU version, with an index on (channel, sku, seq)).

Each line: rows (a write: the events its supersede rewrote), buffers (pages touched: shared hit + read, a count that does not depend on
the machine's load) and the execution time."""

from __future__ import annotations

import argparse
import io
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, TextClause, text

from models.availability import FEED_PAGE, REFRESH, SUPERSEDE_LATER
from runtime.db import make_sync_engine
from runtime.embedded_pg import EmbeddedPostgres
from runtime.migrate import upgrade
from runtime.ports import free_port

CHANNELS = ("web", "marketplace", "b2b")
PAGE = 200

# The other design, for comparison: each event of the page served with the value of the newest
# event of its SKU at or before its position (seq as the version).
_READ_TIME_PAGE = text(
    "SELECT e.seq, e.txid, e.sku, (SELECT f.available FROM availability_event f"
    "  WHERE f.channel = e.channel AND f.sku = e.sku AND (f.txid, f.seq) <= (e.txid, e.seq)"
    "  ORDER BY f.seq DESC LIMIT 1) AS available"
    " FROM (" + FEED_PAGE.text.replace("SELECT seq,", "SELECT channel, seq,") + ") e"
)

# The write as it was before the supersede.
_BEFORE = text(REFRESH.text.replace(", " + SUPERSEDE_LATER, ""))


@dataclass(frozen=True)
class Cost:
    what: str
    rows: int
    buffers: int
    ms: float
    scans: str = ""

    def line(self) -> str:
        return (
            f"{self.what:<58} rows {self.rows:>5}  buffers {self.buffers:>6}  {self.ms:8.2f} ms  {self.scans}"
        )


def _cost(conn: Connection, what: str, sql: TextClause, params: dict[str, Any]) -> Cost:
    plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql.text), params).scalar_one()
    top = plan[0]["Plan"]
    # A data-modifying CTE no node reads (the supersede) runs after the plan: its pages are
    # not in the top node's count, and its rows are the events it rewrote.
    unread = [p for p in top.get("Plans", []) if p.get("Subplan Name") == "CTE superseded"]
    buffers = sum(
        int(p.get("Shared Hit Blocks", 0)) + int(p.get("Shared Read Blocks", 0)) for p in [top, *unread]
    )
    rows = int(unread[0]["Actual Rows"]) if unread else int(top["Actual Rows"])
    return Cost(what, rows, buffers, float(plan[0]["Execution Time"]), _scans(unread[0] if unread else top))


def _scans(node: dict[str, Any]) -> str:
    """The scans of the plan's table, by index (or Seq Scan)."""
    found: list[str] = []
    for child in node.get("Plans", []):
        if child.get("Subplan Name", "").startswith("CTE changed"):
            continue
        if child.get("Relation Name") == "availability_event":
            found.append(child.get("Index Name", child["Node Type"]))
        found += [s for s in _scans(child).split(", ") if s]
    return ", ".join(dict.fromkeys(found))


def fill(conn: Connection, events: int, seed: int = 1) -> None:
    """`events` events, six a transaction (two SKUs on the three channels), and each SKU's
    last value in channel_availability; txids below the horizon: the transaction ids are taken first (subtransactions, one each) and given to the
    rows in order."""
    transactions = events // 6
    conn.execute(text("CREATE TEMP TABLE burn (i int)"))
    conn.execute(
        text(
            "DO $$ BEGIN FOR i IN 1.." + str(transactions + 10) + " LOOP"
            " BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$"
        )
    )
    base = int(conn.execute(text("SELECT (pg_current_xact_id()::text)::bigint")).scalar_one())
    conn.commit()
    rng = random.Random(seed)
    buf = io.StringIO()
    for t in range(transactions):
        for _ in range(2):
            n = rng.randrange(10) if rng.random() < 0.2 else rng.randrange(10, 500)
            for ch in CHANNELS:
                buf.write(f"{base + 1 + t}\t{ch}\tSKU-{n:04d}\t{rng.randrange(200)}\n")
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    with cursor.copy("COPY availability_event (txid, channel, sku, available) FROM STDIN") as copy:
        copy.write(buf.getvalue())
    conn.execute(
        text(
            "INSERT INTO channel_availability (channel, sku, available, updated_at)"
            " SELECT DISTINCT ON (channel, sku) channel, sku, available, now() FROM availability_event"
            " ORDER BY channel, sku, txid DESC, seq DESC"
        )
    )
    conn.commit()
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as auto:
        auto.execute(text("VACUUM ANALYZE availability_event, channel_availability"))  # a table at rest


def _positions(conn: Connection) -> dict[str, tuple[int, int]]:
    rows = conn.execute(
        text("SELECT txid, seq FROM availability_event WHERE channel = 'web' ORDER BY txid, seq")
    ).all()
    return {"start": (0, 0), "middle": tuple(rows[len(rows) // 2]), "head": tuple(rows[-1])}


def feed_pages(conn: Connection, sql: TextClause, label: str) -> Iterator[Cost]:
    for where, (tx, seq) in _positions(conn).items():
        params = {"ch": "web", "tx": tx, "seq": seq, "lim": PAGE}
        yield _cost(conn, f"{label}, page of {PAGE} at the {where}", sql, params)


@contextmanager
def _rolled_back(conn: Connection) -> Iterator[Connection]:
    try:
        yield conn
    finally:
        conn.rollback()


def writes(url: str, younger: int) -> Iterator[Cost]:
    """One SKU's new ATP on the web channel, with 0 and `younger` events of the channel (one in
    20 of that SKU) committed by younger transactions while this one waited for the SKU lock
    (its txid is taken first, like an order step's at its order row lock)."""
    eng = make_sync_engine(url, pool_size=2)
    try:
        # The first only warms up: it extends the table by a page (rolled back, the page stays).
        runs = [(0, False, _BEFORE), (0, False, _BEFORE), (0, True, REFRESH), (younger, True, REFRESH)]
        for i, (n, index, sql) in enumerate([*runs, (younger, False, REFRESH)]):
            with eng.connect() as old, _rolled_back(old):
                txid = int(old.execute(text("SELECT (pg_current_xact_id()::text)::bigint")).scalar_one())
                with eng.connect() as other:
                    other.execute(
                        text(
                            "INSERT INTO availability_event (txid, channel, sku, available)"
                            " SELECT :t + g, 'web', CASE WHEN g % 20 = 0 THEN 'SKU-0001'"
                            " ELSE 'SKU-' || lpad((2 + g % 498)::text, 4, '0') END, g % 200"
                            " FROM generate_series(1, :n) g"
                        ),
                        {"t": txid, "n": n},
                    )
                    other.commit()
                if not index:
                    old.execute(text("DROP INDEX ix_availability_event_sku"))
                what = f"write, {n} younger events ({n // 20} of its SKU)" + (
                    "" if index else ", no SKU index"
                )
                what = "write as before (no supersede, no SKU index)" if sql is _BEFORE else what
                cost = _cost(old, what, sql, {"ch": ["web"], "sk": ["SKU-0001"], "av": [1000]})
                if i:
                    yield cost
            with eng.connect() as conn:  # the younger events go again
                conn.execute(text("DELETE FROM availability_event WHERE txid > :t"), {"t": txid})
                conn.commit()
    finally:
        eng.dispose()


def run(url: str, events: int, younger: int) -> list[Cost]:
    eng = make_sync_engine(url, pool_size=2)
    try:
        with eng.connect() as conn:
            fill(conn, events)
            costs = list(feed_pages(conn, FEED_PAGE, "feed"))
            with _rolled_back(conn):
                conn.execute(text("CREATE INDEX ix_bench_version ON availability_event (channel, sku, seq)"))
                costs += feed_pages(conn, _READ_TIME_PAGE, "feed served at read time")
            sizes = conn.execute(
                text(
                    "SELECT pg_relation_size('availability_event'), pg_relation_size('ix_availability_event_feed'),"
                    " pg_relation_size('ix_availability_event_sku')"
                )
            ).one()
    finally:
        eng.dispose()
    print(
        f"{events} events, 3 channels, 500 SKUs; table {sizes[0] >> 10} kB, feed index {sizes[1] >> 10} kB,"
        f" SKU index {sizes[2] >> 10} kB"
    )
    return costs + list(writes(url, younger))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--younger", type=int, default=1000)
    parser.add_argument("--url", help="an empty migrated database (default: an embedded Postgres)")
    args = parser.parse_args(argv)
    if args.url:
        costs = run(args.url, args.events, args.younger)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            pg = EmbeddedPostgres(Path(tmp) / "data", free_port(), database="feed_cost", durable=False)
            pg.start()
            try:
                upgrade(pg.url)
                costs = run(pg.url, args.events, args.younger)
            finally:
                pg.stop()
    for c in costs:
        print(c.line())


if __name__ == "__main__":
    main()
