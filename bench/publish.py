"""Channel publishing lag: ATP changes made through the real stock core, pushed by the
`publish-{channel}` workflows of `omniflow dev` to a receiver on loopback that verifies every
signature and applies each item by compare-and-set (bench/publish_receiver.py).

    .venv/bin/python -m bench.publish [--rates 100,1000] [--seconds 10] [--skus 1000]
                                      [--connections 8] [--per-tx 25] [--no-flash]

It starts `omniflow dev` (bench.stack), creates --skus SKUs and the three channels of
bench.common, and points each channel's publishing target at the receiver (its secret
answered once). Then:

1. For each rate: +1 adjustments at DC-EAST, open-loop at that constant rate for --seconds
   (bench/publish_load.offer: due changes handed to --connections connections, up to
   --per-tx a transaction). Each is an ATP change of its SKU on all three channels. Lag of a
   change on a channel: its commit to the receiver getting a value at least that high for the
   SKU. Prints offered vs achieved changes/s, lag p50 / p99 per channel and overall,
   deliveries/s, the publisher's own lag (publish_delivery, models.publishing_store
   .lag_stats over the run's window) and the CPU cores each process kept busy (the wall).
2. Flash sale (unless --no-flash): the batch window is set long (2 s); --flash-buyers buyers
   on their own connections reserve a few hot SKUs on every channel until none is left.
   Checked (bench/publish_check): every value the receiver applied is the true ATP at the
   feed position of its delivery, nothing was refused by compare-and-set, the drop to zero
   arrived well inside the batch window, and the receiver ends holding GET /v1/availability.

Writes bench/results/publish.json."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import CHANNELS, LOCATIONS, create_catalog, machine, percentile, write_json
from bench.publish_check import check
from bench.publish_load import Offered, cores_used, cpu_seconds, flash_sale, offer, stack_processes
from bench.publish_receiver import Receiver, running
from bench.stack import DevStack
from client import NewSku, OmniflowClient
from models import publishing_store as store
from runtime.db import make_async_engine

TARGET_P99_S = 1.0
TARGET = {"batch_ms": 50, "max_batch": 1000, "rate_per_s": 50}
FLASH_WINDOW_MS = 2000
CODES = [ch.code for ch in CHANNELS]


def put_targets(stack: DevStack, receiver: Receiver, **target: Any) -> None:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=30.0) as http:
        for ch in CODES:
            r = http.put(f"/v1/channels/{ch}/publishing", json={"url": f"{receiver.url}/{ch}", **target})
            r.raise_for_status()
            receiver.secrets[ch] = r.json()["secret"] or receiver.secrets[ch]


def create_skus(stack: DevStack, skus: list[str]) -> None:
    with OmniflowClient(stack.api, stack.admin_key, timeout=30.0) as admin:
        create_catalog(admin, [NewSku(code=s, name=s, price=1000) for s in skus], LOCATIONS, CHANNELS)


def availability(stack: DevStack) -> list[dict[str, Any]]:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=30.0) as http:
        items: list[dict[str, Any]] = http.get("/v1/availability").json()["items"]
    return [i for i in items if i["channel"] in CODES]


async def until(ok: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def lags(receiver: Receiver, offered: Offered, base: dict[tuple[str, str], int]) -> dict[str, list[float]]:
    """Per channel, each change's commit to the first receipt of a value at least as high."""
    out: dict[str, list[float]] = {}
    for ch in CODES:
        out[ch] = []
        for sku, commits in offered.commits.items():
            got = receiver.applied.get((ch, sku), [])
            for k, committed in enumerate(sorted(commits), start=1):
                at = next((a.at for a in got if a.available >= base[(ch, sku)] + k), None)
                out[ch].append(float("inf") if at is None else max(0.0, at - committed))
        out[ch].sort()
    return out


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "p50_s": round(percentile(values, 0.5), 3),
        "p99_s": round(percentile(values, 0.99), 3),
        "max_s": round(values[-1], 3) if values else None,
        "never": sum(1 for v in values if v == float("inf")),
    }


async def measure(
    stack: DevStack, receiver: Receiver, skus: list[str], rate: int, args: Any
) -> dict[str, Any]:
    base = {(ch, s): receiver.held.get((ch, s), 0) for ch in CODES for s in skus}
    first = len(receiver.deliveries)
    groups = stack_processes(stack.proc.pid if stack.proc else 0, stack.data_dir)
    cpu0, t0, started = cpu_seconds(groups), time.time(), datetime.now(UTC)
    engine = make_async_engine(stack.database_url, pool_size=args.connections)
    try:
        offered = await offer(
            engine,
            skus,
            rate,
            args.seconds,
            connections=args.connections,
            per_tx=args.per_tx,
            run=uuid.uuid4().hex[:8],
        )
        drove = offered.last_commit - t0
        want = {(ch, s): base[(ch, s)] + len(offered.commits[s]) for ch in CODES for s in skus}
        await until(lambda: all(receiver.held.get(k, 0) >= n for k, n in want.items()), 60)
        cpu1, wall = (
            cpu_seconds(stack_processes(stack.proc.pid if stack.proc else 0, stack.data_dir)),
            time.time() - t0,
        )
        async with engine.connect() as conn:
            server = await store.lag_stats(conn, None, since=started, until=datetime.now(UTC))
    finally:
        await engine.dispose()
    per_channel = lags(receiver, offered, base)
    window = receiver.deliveries[first:]
    span = max(receiver.arrived[d["delivery_id"]] for d in window) - t0 if window else drove
    delays = sorted(offered.queue_delays)
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(offered.changes / drove, 1) if drove > 0 else 0.0,
        "changes": offered.changes,
        "failed": offered.failed,
        "error": offered.error,
        "transactions": offered.transactions,
        "queue_delay_p99_s": round(percentile(delays, 0.99), 3),
        "lag": {"all": summary(sorted(v for vs in per_channel.values() for v in vs))}
        | {ch: summary(v) for ch, v in per_channel.items()},
        "publisher_lag_ms": {"p50": server.p50, "p99": server.p99, "deliveries": server.n},
        "deliveries": len(window),
        "deliveries_per_s": round(len(window) / span, 1) if span > 0 else 0.0,
        "items_delivered": sum(len(d["items"]) for d in window),
        "cpu_cores": cores_used(cpu0, cpu1, wall),
    }


async def flash(stack: DevStack, receiver: Receiver, args: Any) -> dict[str, Any]:
    hot = [f"FLASH-{i}" for i in range(args.flash_skus)]
    await asyncio.to_thread(create_skus, stack, hot)
    await asyncio.to_thread(put_targets, stack, receiver, **{**TARGET, "batch_ms": FLASH_WINDOW_MS})
    async with httpx.AsyncClient(base_url=stack.api, headers=stack.headers, timeout=30.0) as http:
        for sku in hot:
            body = {"sku": sku, "location": "DC-EAST", "delta": args.flash_units, "reason": "initial"}
            r = await http.post(
                "/v1/inventory/adjustments", json=body, headers={"Idempotency-Key": f"flash-{sku}"}
            )
            r.raise_for_status()
    stocked = await until(
        lambda: all(receiver.held.get((c, s)) == args.flash_units for c in CODES for s in hot), 30
    )
    engine = make_async_engine(stack.database_url, pool_size=args.flash_buyers)
    try:
        sale = await flash_sale(engine, hot, CODES, args.flash_buyers, run=uuid.uuid4().hex[:8])
        drained = await until(lambda: all(receiver.held.get((c, s)) == 0 for c in CODES for s in hot), 30)
        verdict = await check(engine, receiver, CODES, await asyncio.to_thread(availability, stack))
    finally:
        await engine.dispose()
    last_sale = {s: max((t for sku, t in sale.commits if sku == s), default=0.0) for s in hot}
    zero_lags = sorted(
        next(a.at for a in receiver.applied[(c, s)] if a.available == 0) - last_sale[s]
        for c in CODES
        for s in hot
        if receiver.held.get((c, s)) == 0
    )
    return {
        "skus": len(hot),
        "units_each": args.flash_units,
        "buyers": args.flash_buyers,
        "batch_ms": FLASH_WINDOW_MS,
        "stocked_delivered": stocked,
        "reserved": sale.reserved,
        "refused": sale.refused,
        "drained_delivered": drained,
        "items_checked": verdict.items,
        "untrue_items": verdict.untrue[:10],
        "refused_by_compare_and_set": verdict.stale,
        "final_mismatches": verdict.final_mismatches[:10],
        "zero_lag_max_s": round(zero_lags[-1], 3) if zero_lags else None,
        "zero_ahead_of_window": bool(zero_lags) and zero_lags[-1] < FLASH_WINDOW_MS / 1000,
        "ok": verdict.ok and drained,
    }


async def run(args: Any) -> dict[str, Any]:
    receiver = Receiver()
    skus = [f"PUB-{i:04d}" for i in range(args.skus)]
    async with running(receiver):
        with tempfile.TemporaryDirectory(prefix="omniflow-publish-") as tmp:
            stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
            try:
                await asyncio.to_thread(create_skus, stack, skus)
                await asyncio.to_thread(put_targets, stack, receiver, **TARGET)
                await until(
                    lambda: {d["channel"] for d in receiver.deliveries} == set(CODES), 60
                )  # snapshots
                results = [await measure(stack, receiver, skus, rate, args) for rate in args.rates]
                flashed = None if args.no_flash else await flash(stack, receiver, args)
            finally:
                stack.stop()
    at_100 = next((r for r in results if r["offered_per_s"] == 100), None)
    return {
        "channels": len(CODES),
        "skus": args.skus,
        "seconds_per_rate": args.seconds,
        "connections": args.connections,
        "per_tx": args.per_tx,
        "target": TARGET,
        "results": results,
        "flash_sale": flashed,
        "bad_signatures": receiver.bad_signatures,
        "refused_by_compare_and_set": receiver.stale,
        "duplicates": receiver.duplicates,
        "p99_target_s": TARGET_P99_S,
        "p99_target_holds_at_100": None if at_100 is None else at_100["lag"]["all"]["p99_s"] <= TARGET_P99_S,
        "machine": machine(),
    }


def report(result: dict[str, Any]) -> None:
    for r in result["results"]:
        lag = r["lag"]
        per = ", ".join(f"{ch} {lag[ch]['p50_s']}/{lag[ch]['p99_s']}" for ch in CODES)
        print(
            f"{r['offered_per_s']:>5}/s offered, {r['achieved_per_s']}/s achieved ({r['failed']} failed,"
            f" queue p99 {r['queue_delay_p99_s']} s): lag p50 {lag['all']['p50_s']} s, p99 {lag['all']['p99_s']} s"
            f" (max {lag['all']['max_s']}, never {lag['all']['never']}); per channel p50/p99 {per};"
            f" {r['deliveries_per_s']} deliveries/s ({r['items_delivered']} items)"
        )
        print(f"       CPU cores busy: {r['cpu_cores']}")
    f = result["flash_sale"]
    if f is not None:
        print(
            f"flash sale: {f['reserved']} reserved of {f['skus']}x{f['units_each']} by {f['buyers']} buyers;"
            f" {f['items_checked']} items checked, untrue {len(f['untrue_items'])}, refused by CAS"
            f" {f['refused_by_compare_and_set']}, final mismatches {len(f['final_mismatches'])};"
            f" zero arrived within {f['zero_lag_max_s']} s of the last sale (window {f['batch_ms']} ms):"
            f" {'OK' if f['ok'] and f['zero_ahead_of_window'] else 'FAILED'}"
        )
    print(
        f"bad signatures {result['bad_signatures']}, refused by compare-and-set {result['refused_by_compare_and_set']},"
        f" duplicates {result['duplicates']}; p99 <= {TARGET_P99_S} s at 100/s:"
        f" {'holds' if result['p99_target_holds_at_100'] else 'does NOT hold'}"
    )
    print(f"wrote {write_json('publish.json', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="100,1000", help="ATP changes per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate is offered")
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8, help="the driver's connections")
    parser.add_argument("--per-tx", type=int, default=25, help="most changes one transaction takes")
    parser.add_argument("--no-flash", action="store_true", help="skip the flash sale")
    parser.add_argument("--flash-skus", type=int, default=3)
    parser.add_argument("--flash-units", type=int, default=60)
    parser.add_argument("--flash-buyers", type=int, default=16)
    args = parser.parse_args()
    args.rates = [int(r) for r in args.rates.split(",")]
    report(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
