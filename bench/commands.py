"""What a workflow's extra commands cost the Temporal server: the ceiling's no-op workflow with
an order's round trips, run in alternating batches as the order workflow asked before and
after `lean-commands` (workflows/order.py) — 3 patch markers (each with an upsert of
TemporalChangeVersion) and an upsert per update against 1 patch — on one dev server, its CPU
per workflow for each. Alternating batches in one window keep a shared machine's load out of
the comparison.

    python -m bench.commands --batches 3 --per-batch 40

Each batch's figure is less the server's idle CPU over the batch (measured for 3 s before it).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path

import psutil
from temporalio.client import Client

from bench.ceiling import Shape
from bench.ceiling_driver import measure_ceiling, start_ceiling_worker
from bench.stack import DevStack

ORDER = Shape(0, 0, 0, updates=3, local_before=1, local_per_update=1)
SHAPES = {
    # before: 3 patches; OmniChannel and OmniStatus in the first task, OmniStatus per step
    "before": dataclasses.replace(ORDER, patches=3, upserts_before=2, upserts_per_update=1),
    # lean-commands: 1 patch; OmniStatus on change (3 for the happy path)
    "lean": dataclasses.replace(ORDER, patches=1, upserts_per_update=1),
    "no-op": ORDER,
}


def _server_cpu(stack: DevStack) -> float:
    assert stack.proc is not None
    for proc in psutil.Process(stack.proc.pid).children(recursive=True):
        if "temporal" in " ".join(proc.cmdline()) and "start-dev" in " ".join(proc.cmdline()):
            t = proc.cpu_times()
            return float(t.user + t.system)
    raise RuntimeError("no Temporal dev server under the stack")


async def _idle_rate(stack: DevStack, seconds: float = 3.0) -> float:
    """The server's CPU seconds per second with nothing to do, just before a batch."""
    cpu0 = _server_cpu(stack)
    await asyncio.sleep(seconds)
    return (_server_cpu(stack) - cpu0) / seconds


async def run(batches: int, per_batch: int, concurrency: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in SHAPES}
    with tempfile.TemporaryDirectory(prefix="omniflow-bench-") as tmp:
        stack = DevStack(Path(tmp) / "data", extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
        ceiling = await start_ceiling_worker(stack)
        try:
            client = await Client.connect(stack.temporal_address)
            await measure_ceiling(client, ceiling, ORDER, 2, 6, "warm")
            for b in range(batches):
                for name, shape in SHAPES.items():
                    idle = await _idle_rate(stack)
                    cpu0, t0 = _server_cpu(stack), time.perf_counter()
                    await measure_ceiling(client, ceiling, shape, concurrency, per_batch, f"{name}-{b}")
                    took = time.perf_counter() - t0
                    # less what the server spends idle (timers, polls, its own housekeeping)
                    ms = ((_server_cpu(stack) - cpu0) - idle * took) * 1000 / per_batch
                    out[name].append(round(ms, 1))
                    print(
                        f"  batch {b} {name:7s} {ms:6.1f} ms per workflow ({took:.0f} s, idle {idle * 1000:.0f} ms/s)"
                    )
        finally:
            ceiling.stop()
            stack.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--per-batch", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(run(args.batches, args.per_batch, args.concurrency))
    for name, values in result.items():
        print(f"{name:7s} server CPU ms per workflow: {' / '.join(map(str, values))}")


if __name__ == "__main__":
    main()
