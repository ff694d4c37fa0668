"""Driving the no-op ceiling (bench.ceiling) as the benchmark's warehouse drives an order.

An order's first update (the warehouse's pick) comes the moment its pick task exists, which is
when the order's first step commits, inside the order's first workflow task; that update is a
workflow task of its own. A client that sends the no-op's first update right after the start
has it ride in the start's task instead: 3 workflow tasks where the order makes 4, measured at
≈ 6 ms less server CPU per workflow. So the no-op's worker tells this driver, by a datagram,
when the no-op's steps before its first update have run (`ReadyNotices`), and the driver sends
the first update then.

Two ways to drive it: `measure_ceiling`, a closed loop at the orders' concurrency (the most the
no-op can do: its CPU per workflow is the ceiling's in `cpu_ratio` and `server_ratio`), and
`measure_ceiling_at_rate`, the no-op offered at the rate the orders ran: the dev server spends
more CPU per workflow at a lower rate (measured: ≈ 5 ms more at 15 workflows/s than at 25), so
this is the like-for-like figure for the server's work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psutil
from temporalio.client import Client

from bench.ceiling import Shape
from bench.open_loop import offer
from bench.stack import DevStack

CEILING_QUEUE = "bench-ceiling"


class ReadyNotices(asyncio.DatagramProtocol):
    """Workflow ids sent by the ceiling's worker when a no-op's steps before its first update
    have run; `expect` before starting the workflow, await the future after."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self.port = 0

    async def listen(self) -> ReadyNotices:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def expect(self, workflow_id: str) -> asyncio.Future[None]:
        self._waiting[workflow_id] = asyncio.get_running_loop().create_future()
        return self._waiting[workflow_id]

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        waiting = self._waiting.pop(data.decode(), None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)


@dataclass
class CeilingWorker:
    """The ceiling's worker process (its CPU is the ceiling's worker CPU) and its notices."""

    proc: subprocess.Popen[str]
    notices: ReadyNotices

    def cpu_seconds(self) -> float:
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(t.user + t.system)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def start_ceiling_worker(stack: DevStack) -> CeilingWorker:
    notices = await ReadyNotices().listen()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFLOW_")}
    args = [
        "--address",
        stack.temporal_address,
        "--task-queue",
        CEILING_QUEUE,
        "--notify-port",
        str(notices.port),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", *args], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "ceiling worker polling"
    return CeilingWorker(proc, notices)


def _driver(
    client: Client, shape: Shape, tag: str, notices: ReadyNotices
) -> Callable[[int], Awaitable[None]]:
    waits_for_steps = shape.activities_before + shape.local_before > 0

    async def one(n: int) -> None:
        workflow_id = f"ceiling-{tag}-{n}"
        ready = notices.expect(workflow_id) if waits_for_steps else None
        handle = await client.start_workflow("BenchCeiling", shape, id=workflow_id, task_queue=CEILING_QUEUE)
        if ready is not None:  # a datagram lost on loopback would cost this one 5 s, not the run
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready, 5)
        for i in range(shape.updates):
            await handle.execute_update("step", f"u{i}")
        for _ in range(shape.signals):
            await handle.signal("poke")
        await handle.result()

    return one


async def measure_ceiling(
    client: Client, worker: CeilingWorker, shape: Shape, concurrency: int, total: int, tag: str
) -> float:
    """Workflows per second, `concurrency` clients each driving one no-op after another."""
    from bench.common import run_jobs

    seconds, failed = await run_jobs(concurrency, total, _driver(client, shape, tag, worker.notices))
    return round((total - failed) / seconds, 2)


async def measure_ceiling_at_rate(
    client: Client, worker: CeilingWorker, shape: Shape, rate: float, total: int, tag: str
) -> float:
    """Workflows per second when `total` no-ops are started at `rate` per second (each driven
    by its own task, whatever the others are doing)."""
    if rate <= 0:  # ours made no order: nothing to match
        return 0.0
    one = _driver(client, shape, tag, worker.notices)
    t0 = time.perf_counter()
    offered = await offer(rate, total, lambda n, _scheduled: one(n))
    return round((total - offered.failed) / (time.perf_counter() - t0), 2)
