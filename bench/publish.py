"""Channel publishing lag: ATP changes driven through the API, pushed by the `publish-{channel}`
workflows to a real receiver on loopback that verifies every signature and the per-SKU order.

    .venv/bin/python -m bench.publish [--rates 100,1000] [--seconds 10] [--skus 1000]

It starts `omniflow dev` (bench.stack), creates --skus SKUs and the three channels of
bench.common, points each channel's publishing target at the receiver (its secret answered
once), then for each rate sends inventory adjustments (+1 at DC-EAST, each one an ATP change
on all three channels) open-loop at that rate for --seconds. The receiver deduplicates by
delivery id and applies an item only when `previous` equals what it holds (compare-and-set);
a mismatch or a bad signature is counted. Lag: the adjustment's answer (≈ the change's
commit) to the receiver getting a value at least that high for the SKU. Prints p50 / p99 lag
and deliveries per second per rate, whether p99 ≤ 1 s holds at 100 changes/s, and writes
bench/results/publish.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import CHANNELS, LOCATIONS, create_catalog, machine, percentile, write_json
from bench.stack import DevStack
from client import NewSku, OmniflowClient
from domain.publishing import DELIVERY_HEADER, SIGNATURE_HEADER, verify

TARGET_P99_S = 1.0
CONCURRENCY = 64
TARGET = {"batch_ms": 50, "max_batch": 1000, "rate_per_s": 50}


@dataclass
class Receiver:
    secrets: dict[str, str] = field(default_factory=dict)
    held: dict[tuple[str, str], int] = field(default_factory=dict)
    got: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    seen: set[str] = field(default_factory=set)
    deliveries: list[tuple[str, float, int]] = field(default_factory=list)  # channel, at, items
    bad_signatures: int = 0
    out_of_order: int = 0
    duplicates: int = 0

    async def handle(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        body = await request.body()
        now = time.time()
        if not verify(
            self.secrets.get(channel, ""), request.headers.get(SIGNATURE_HEADER, ""), body, int(now)
        ):
            self.bad_signatures += 1
            return Response(status_code=401)
        delivery = json.loads(body)
        if request.headers.get(DELIVERY_HEADER) in self.seen:
            self.duplicates += 1
            return Response(status_code=204)
        self.seen.add(delivery["delivery_id"])
        self.deliveries.append((channel, now, len(delivery["items"])))
        for item in delivery["items"]:
            key = (channel, item["sku"])
            if delivery["kind"] == "delta" and item["previous"] != self.held.get(key):
                self.out_of_order += 1
            self.held[key] = item["available"]
            self.got[key].append((item["available"], now))
        return Response(status_code=204)


async def serve(receiver: Receiver) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    app = Starlette(routes=[Route("/hook/{channel}", receiver.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/hook", server, task


def setup(stack: DevStack, skus: list[str], receiver: Receiver, url: str) -> None:
    with OmniflowClient(stack.api, stack.admin_key, timeout=30.0) as admin:
        create_catalog(admin, [NewSku(code=s, name=s, price=1000) for s in skus], LOCATIONS, CHANNELS)
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=30.0) as http:
        for ch in CHANNELS:
            r = http.put(f"/v1/channels/{ch.code}/publishing", json={"url": f"{url}/{ch.code}", **TARGET})
            r.raise_for_status()
            receiver.secrets[ch.code] = r.json()["secret"]


async def drive(stack: DevStack, skus: list[str], rate: int, seconds: float) -> dict[str, list[float]]:
    """+1 adjustments open-loop at `rate`/s, SKUs in turn; each SKU's answer times in order."""
    answered: dict[str, list[float]] = defaultdict(list)
    limit = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=stack.api, headers=stack.headers, timeout=30.0, limits=limits
    ) as http:

        async def one(sku: str) -> None:
            async with limit:
                body = {"sku": sku, "location": "DC-EAST", "delta": 1, "reason": "found"}
                r = await http.post(
                    "/v1/inventory/adjustments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
                r.raise_for_status()
                answered[sku].append(time.time())

        tasks, t0, n = [], time.monotonic(), 0
        while (elapsed := time.monotonic() - t0) < seconds:
            while n < elapsed * rate:
                tasks.append(asyncio.create_task(one(skus[n % len(skus)])))
                n += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
    return answered


def lags(receiver: Receiver, answered: dict[str, list[float]], base: dict[str, int]) -> list[float]:
    """Per change and channel: its answer to the first receipt of a value at least as high."""
    out: list[float] = []
    for ch in CHANNELS:
        for sku, times in answered.items():
            got = receiver.got.get((ch.code, sku), [])
            for k, t in enumerate(sorted(times), start=1):
                at = next((r for v, r in got if v >= base[sku] + k), None)
                out.append(float("inf") if at is None else max(0.0, at - t))
    return sorted(out)


async def measure(
    stack: DevStack, receiver: Receiver, skus: list[str], rate: int, seconds: float
) -> dict[str, Any]:
    base = {s: receiver.held.get((CHANNELS[0].code, s), 0) for s in skus}
    first = len(receiver.deliveries)
    t0 = time.time()
    answered = await drive(stack, skus, rate, seconds)
    drove = time.time() - t0
    want = {s: base[s] + len(answered[s]) for s in answered}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        receiver.held.get((ch.code, s), 0) < n for ch in CHANNELS for s, n in want.items()
    ):
        await asyncio.sleep(0.1)
    lag = lags(receiver, answered, base)
    window = receiver.deliveries[first:]
    span = max(drove, (window[-1][1] - t0) if window else drove)
    changes = sum(len(v) for v in answered.values())
    return {
        "rate_asked": rate,
        "changes": changes,
        "changes_per_s": round(changes / drove, 1),
        "deliveries": len(window),
        "deliveries_per_s": round(len(window) / span, 1),
        "items_delivered": sum(n for _, _, n in window),
        "lag_p50_s": round(percentile(lag, 0.5), 3),
        "lag_p99_s": round(percentile(lag, 0.99), 3),
        "lag_max_s": round(lag[-1], 3) if lag else None,
        "never_delivered": sum(1 for x in lag if x == float("inf")),
    }


async def run(rates: list[int], seconds: float, n_skus: int) -> dict[str, Any]:
    receiver = Receiver()
    url, server, task = await serve(receiver)
    skus = [f"PUB-{i:04d}" for i in range(n_skus)]
    with tempfile.TemporaryDirectory(prefix="omniflow-publish-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
        try:
            await asyncio.to_thread(setup, stack, skus, receiver, url)
            while len({ch for ch, _, _ in receiver.deliveries}) < len(CHANNELS):  # the snapshots
                await asyncio.sleep(0.1)
            results = [await measure(stack, receiver, skus, rate, seconds) for rate in rates]
        finally:
            stack.stop()
            server.should_exit = True
            await task
    at_100 = next((r for r in results if r["rate_asked"] == 100), None)
    return {
        "channels": len(CHANNELS),
        "skus": n_skus,
        "seconds_per_rate": seconds,
        "target": TARGET,
        "results": results,
        "bad_signatures": receiver.bad_signatures,
        "out_of_order": receiver.out_of_order,
        "duplicates": receiver.duplicates,
        "p99_target_s": TARGET_P99_S,
        "p99_target_holds_at_100": None if at_100 is None else at_100["lag_p99_s"] <= TARGET_P99_S,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="100,1000", help="ATP changes per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate is driven")
    parser.add_argument("--skus", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(run([int(r) for r in args.rates.split(",")], args.seconds, args.skus))
    for r in result["results"]:
        print(
            f"{r['rate_asked']:>5}/s asked, {r['changes_per_s']}/s driven: lag p50 {r['lag_p50_s']} s,"
            f" p99 {r['lag_p99_s']} s (max {r['lag_max_s']}), {r['deliveries_per_s']} deliveries/s,"
            f" never delivered {r['never_delivered']}"
        )
    print(
        f"bad signatures {result['bad_signatures']}, out of order {result['out_of_order']},"
        f" duplicates {result['duplicates']}; p99 <= {TARGET_P99_S} s at 100/s:"
        f" {'holds' if result['p99_target_holds_at_100'] else 'does NOT hold'}"
    )
    print(f"wrote {write_json('publish.json', result)}")


if __name__ == "__main__":
    main()
