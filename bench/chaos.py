"""Chaos: orders keep flowing while the worker is SIGKILLed every few seconds, the Temporal
dev server is killed once and Postgres is crashed once; at the end nothing is lost, nothing
doubled, nothing oversold, and the inventory and ledger checks are clean.

    python -m bench.chaos --seconds 60 --clients 4 [--replicas 2]

The whole stack runs through `omniflow dev` on free ports (bench/stack.py). Over HTTP with
the API client (client/), as channels and a warehouse use it:

- client threads place orders from three channels at `--rate` orders per second (each
  retries its order with the same Idempotency-Key until it gets a 2xx, as a channel's
  integration does); 60 % are tees and mugs (plenty), 15 % a limited SKU without backorders
  (cancelled by sourcing once it is gone), 25 % the limited SKU with backorders, alone or
  with a tee (they wait in `awaiting_stock`, or ship the tee and wait for the rest, until a
  restock wakes them);
- a restocker adds a few units of the limited SKU now and then;
- a receiving dock places a purchase order for the limited SKU every `po_every` seconds and
  receives it in three deliveries, each posted once (its receipt number and Idempotency-Key,
  retried until answered) while the worker dies (bench/chaos_purchasing.py);
- a returns desk asks for a return of a completed order of tees and mugs every
  `return_every` seconds through its channel (refunds, every third a store credit), and the
  warehouse receives its parcel (in parts) and inspects it, restocking or scrapping, each step
  with its own Idempotency-Key, retried until answered (bench/chaos_returns.py);
- `--pickers` warehouse threads pick, pack and ship every open shipment, and take up again
  the ones a crash left `picked` or `packed`;
- the chaos thread SIGKILLs the worker every `--kill-every` seconds (the `omniflow dev`
  supervisor restarts it), SIGKILLs the Temporal dev server once (restarted by the
  supervisor; workflows persist in its SQLite file) and stops Postgres with
  `pg_ctl -m immediate` (a crash: WAL recovery on start) once, starting it again on the same
  data directory and port after `--pg-down` seconds;
- with `--replicas 2` the stack runs two workers and two API processes against the one
  Postgres and the one Temporal server, and the kills alternate: a worker, then an API
  process (the one running longest, so each replica in turn), each restarted by the
  supervisor; every client is given both APIs, so a request or a retry that meets the dead
  one goes to the other with the same Idempotency-Key (bench/chaos_kills.py).

Then no new orders; the warehouse works until every order is `completed`, `cancelled` or in
an expected wait (`awaiting_stock`, `on_hold`, or partly shipped with the rest backordered).
Verified and printed:

- lost: placed (the API answered 2xx) but no order row or no workflow;
- doubled: a shipment with more than one `shipped` event, `shipped` events ≠ shipped
  shipments, a line shipped beyond its quantity, or captured ≠ the shipped part's total;
- oversold: per SKU, units shipped + reserved beyond what was ever put in stock, or a
  negative / over-reserved balance; drift: sellable on hand ≠ stocked − shipped;
- lost / doubled receipts: a delivery taken (2xx) but not on its PO; a receipt twice, or a
  PO's received units ≠ the sum of its distinct receipts (their units count as stocked);
- stuck: an order in no final or expected state once nothing has moved for `--stall`
  seconds (settling waits while any order, shipment, PO or return still changes:
  bench/chaos_settle.py), or whose workflow disagrees with its row (failed, terminated,
  still running when done);
- returns: one not `completed` once the orders settle (stuck), a receipt or an inspection
  that moved more units than sent, a refund or store credit posted twice or not as the return
  says, a payment refunded beyond its capture, units left in the `returns` bucket
  (bench/chaos_returns.py); restocked units count as stocked;
- `omniflow inventory check` and `omniflow ledger check` against the stack's database.

Results: tables (with the returns created, completed and refunded), and
bench/results/chaos.json. Exit code 1 when anything is lost, doubled, oversold, drifted or
stuck, a check has findings, or the stack died.

Here: the run and the command line. bench/chaos_setup.py has the configuration and the
catalog, bench/chaos_load.py the load, bench/chaos_kills.py the chaos, bench/chaos_settle.py the
wait for the orders to settle, bench/chaos_verify.py the checks,
bench/chaos_stack.py the processes, bench/chaos_report.py the report."""

from __future__ import annotations

import argparse
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.chaos_load import Chaos
from bench.chaos_purchasing import Dock
from bench.chaos_report import ChaosEvent, Placed, Report, console, print_report
from bench.chaos_returns import ReturnsDesk
from bench.chaos_settle import settle
from bench.chaos_setup import HTTP_TIMEOUT, STACK_ENV, ChaosConfig
from bench.chaos_stack import _find_child, run_checks, temporal_process, worker_process
from bench.chaos_verify import verify
from bench.common import percentile, write_json
from bench.stack import DevStack
from client import Order

__all__ = [
    "Chaos",
    "ChaosConfig",
    "ChaosEvent",
    "Dock",
    "Placed",
    "Report",
    "ReturnsDesk",
    "_find_child",
    "main",
    "print_report",
    "run",
    "run_checks",
    "temporal_process",
    "worker_process",
]


Desks = tuple[Dock, ReturnsDesk]  # the receiving dock and the returns desk


@contextmanager
def _data_dir(cfg: ChaosConfig) -> Iterator[Path]:
    if cfg.data_dir is not None:
        yield cfg.data_dir
        return
    with tempfile.TemporaryDirectory(prefix="omniflow-chaos-") as tmp:
        yield Path(tmp) / "data"


def run(cfg: ChaosConfig, log: Any = None) -> Report:
    """Start the stack, load it under chaos, settle, verify; the stack is stopped after."""
    say = log or (lambda msg: console.print(msg))
    started = time.monotonic()
    report = Report(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()})
    with _data_dir(cfg) as data_dir:
        stack = DevStack(data_dir, extra_env=dict(STACK_ENV), replicas=cfg.replicas).start()
        try:
            chaos = Chaos(stack, cfg)
            chaos.setup()
            dock = Dock(chaos)
            dock.setup()
            desk = ReturnsDesk(chaos)
            say(
                f"stack up ({stack.api}); {cfg.clients} clients for {cfg.seconds:.0f}s, chaos: "
                + ", ".join(f"{k}@{t:.1f}s" for t, k in cfg.schedule())
            )
            unsettled = _load_and_settle(chaos, (dock, desk), cfg, report, say)
            _check_outcome(chaos, (dock, desk), stack, cfg, report, unsettled)
            _measure(chaos, stack, report)
        finally:
            stack.stop()
    report.seconds_total = round(time.monotonic() - started, 1)
    return report


def _load_and_settle(
    chaos: Chaos, desks: Desks, cfg: ChaosConfig, report: Report, say: Callable[[str], None]
) -> list[Order]:
    """Orders, restocks and chaos for `cfg.seconds`; then the warehouse works until the orders
    settle, or nothing has moved for `cfg.settle_stall_seconds` (bench/chaos_settle.py). The
    orders still unsettled."""
    chaos.t0 = time.monotonic()
    chaos.give_up_at = chaos.t0 + cfg.seconds + cfg.settle_seconds
    threads = [threading.Thread(target=chaos.client_loop, args=(i,), daemon=True) for i in range(cfg.clients)]
    loops = (chaos.restock_loop, chaos.chaos_loop, *(d.loop for d in desks))
    side = [threading.Thread(target=f, daemon=True) for f in loops]
    warehouse = [
        threading.Thread(target=chaos.warehouse_loop, args=(i,), daemon=True) for i in range(cfg.pickers)
    ]
    for t in [*threads, *side, *warehouse]:
        t.start()
    progress = threading.Thread(target=chaos.progress_loop, args=(say,), daemon=True)
    progress.start()
    time.sleep(cfg.seconds)
    chaos.stop_orders.set()
    for t in [*threads, *side]:
        t.join()
    load_s = chaos.now()
    say(f"load over after {load_s:.1f}s: {len(chaos.placed)} orders placed; settling…")
    settling = settle(chaos, cfg.settle_stall_seconds, cfg.settle_seconds)
    report.settle_s = round(settling.seconds, 1)
    if settling.stalled:
        report.settle_stalled = settling.stalled
        report.problems.append(f"settling stopped: {settling.stalled}")
        say(f"settling stopped after {settling.seconds:.0f}s: {settling.stalled}")
    chaos.stop_warehouse.set()
    for t in warehouse:
        t.join(HTTP_TIMEOUT * 2)
    return settling.unsettled


def _check_outcome(
    chaos: Chaos, desks: Desks, stack: DevStack, cfg: ChaosConfig, report: Report, unsettled: list[Order]
) -> None:
    """Counts, then lost / doubled / oversold / stuck and the stack's checks, while it is alive."""
    report.stack_alive = stack.proc is not None and stack.proc.poll() is None
    report.placed = len(chaos.placed)
    report.not_placed = len(chaos.not_placed)
    report.turned_away = len(chaos.turned_away)
    report.placed_per_s = round(report.placed / cfg.seconds, 2)
    report.events = chaos.events
    if report.stack_alive:
        verify(chaos, report, unsettled, *desks)
        report.checks = run_checks(stack)
    else:
        report.problems.append("omniflow dev exited: " + stack.stderr()[-1500:])
    report.problems += chaos.not_placed[:10] + chaos.thread_errors
    if chaos.thread_errors:
        report.stuck += len(chaos.thread_errors)


def _measure(chaos: Chaos, stack: DevStack, report: Report) -> None:
    """Capture latencies, shipments, the responses seen and the restarts of each process."""
    latencies = sorted(p.latency_s * 1000 for p in chaos.placed)
    report.capture_latency_ms = {
        f"p{int(q * 100)}": round(percentile(latencies, q), 1) for q in (0.5, 0.95, 0.99)
    } | {"max": round(max(latencies, default=0), 1)}
    report.shipments_shipped = sum(chaos.ship_oks.values())
    report.responses = dict(sorted(chaos.responses.items()))
    report.server_errors = chaos.server_errors
    err = stack.stderr()
    report.restarts = {  # the supervisor names a replica by its number: `worker 2 exited`
        "worker": len(re.findall(r"omniflow dev: worker(?: \d+)? exited", err)),
        "api": len(re.findall(r"omniflow dev: api(?: \d+)? exited", err)),
        "temporal": err.count("Temporal dev server exited"),
    }
    # Updates a 503 left unanswered, sent again by the API until answered (api/update_finisher.py).
    report.updates_finished = dict(Counter(re.findall(r"unanswered update (\w+)", err)))
    # Steps refused because their workflow had lost the step before (api/shipment_steps.py).
    report.caught_up = err.count("workflow caught up with a recorded step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="order load (and chaos) duration")
    parser.add_argument("--clients", type=int, default=4, help="order-placing threads")
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second, all clients together")
    parser.add_argument("--pickers", type=int, default=2, help="warehouse threads")
    parser.add_argument("--kill-every", type=float, default=5.0, help="SIGKILL the worker this often (s)")
    parser.add_argument("--pg-down", type=float, default=3.0, help="seconds Postgres stays down")
    parser.add_argument("--pg-stop-mode", choices=("immediate", "fast"), default="immediate")
    parser.add_argument(
        "--stall", type=float, default=60.0, help="settling fails once nothing has moved this long (s)"
    )
    parser.add_argument(
        "--settle", type=float, default=900.0, help="settling stops here even while orders move (s)"
    )
    parser.add_argument("--po-every", type=float, default=6.0, help="place and receive a PO this often (s)")
    parser.add_argument(
        "--return-every", type=float, default=2.0, help="return a completed order this often (s; 0: none)"
    )
    parser.add_argument(
        "--replicas", type=int, default=1, help="workers and APIs, each; with 2 an API is killed in turn"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the stack's data here")
    args = parser.parse_args()
    cfg = ChaosConfig(
        seconds=args.seconds,
        clients=args.clients,
        rate=args.rate,
        pickers=args.pickers,
        kill_every=args.kill_every,
        pg_down=args.pg_down,
        pg_stop_mode=args.pg_stop_mode,
        settle_stall_seconds=args.stall,
        settle_seconds=args.settle,
        po_every=args.po_every,
        return_every=args.return_every,
        replicas=args.replicas,
        seed=args.seed,
        data_dir=args.data_dir,
    )
    report = run(cfg)
    print_report(report)
    path = write_json("chaos.json", report.as_json())
    console.print(f"wrote {path}")
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
