"""The ceiling: a workflow that does nothing but make the same Temporal round trips as one
order's lifecycle — the same number of activities (and local activities), updates, signals
and timers, counted from a real order's history in the same run, with its first update sent
when its first steps have run, as the order's is (bench.ceiling_driver) — on the same dev
server with the same worker settings. Whatever our orders reach beyond it is impossible; the
distance below it is our code (API, database, activities).

    python -m bench.ceiling --address 127.0.0.1:7233 --task-queue bench-ceiling --notify-port P  # its worker
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.worker import Worker


@dataclass(frozen=True)
class Shape:
    """The Temporal work of one order, split as the order splits it: activities before the
    first update, per update, and after the last; local activities likewise; timers."""

    activities_before: int
    activities_per_update: int
    activities_after: int
    updates: int
    signals: int = 0
    timers: int = 0
    local_before: int = 0
    local_per_update: int = 0
    local_after: int = 0
    # Only for bench/commands.py (what patches and upserts cost the server); 0 in the ceiling.
    patches: int = 0
    upserts_before: int = 0
    upserts_per_update: int = 0


STATUS = SearchAttributeKey.for_keyword("OmniStatus")  # registered by omniflow dev


NOTIFY_PORT = 0  # where this worker tells the driver a no-op is ready (bench.ceiling_driver)


@activity.defn(name="bench_noop")
async def noop(stage: str) -> None:
    """`ready`: the last step before the first update, the moment an order's warehouse would
    see its pick task, so the driver sends the first update now."""
    if stage == "ready" and NOTIFY_PORT:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto((activity.info().workflow_id or "").encode(), ("127.0.0.1", NOTIFY_PORT))


def _step(local: bool, stage: str = "") -> object:
    timeout = timedelta(seconds=30)
    if local:
        return workflow.execute_local_activity("bench_noop", stage, start_to_close_timeout=timeout)
    return workflow.execute_activity("bench_noop", stage, start_to_close_timeout=timeout)


@workflow.defn(name="BenchCeiling")
class CeilingWorkflow:
    def __init__(self) -> None:
        self.ready = False
        self.updates = 0
        self.signals = 0

    @workflow.run
    async def run(self, shape: Shape) -> int:
        self.shape = shape
        for i in range(shape.patches):
            workflow.patched(f"bench-patch-{i}")
        for i in range(shape.upserts_before):
            workflow.upsert_search_attributes([STATUS.value_set(f"start-{i}")])
        before = [False] * shape.activities_before + [True] * shape.local_before
        for i, local in enumerate(before):
            await _step(local, "ready" if i == len(before) - 1 else "")  # type: ignore[misc]
        for _ in range(shape.timers):
            await workflow.sleep(0.001)
        self.ready = True
        await workflow.wait_condition(lambda: self.updates >= shape.updates and self.signals >= shape.signals)
        for _ in range(shape.activities_after):
            await _step(False)  # type: ignore[misc]
        for _ in range(shape.local_after):
            await _step(True)  # type: ignore[misc]
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.updates

    @workflow.update
    async def step(self, name: str) -> str:
        await workflow.wait_condition(lambda: self.ready)
        for _ in range(self.shape.activities_per_update):
            await _step(False)  # type: ignore[misc]
        for _ in range(self.shape.local_per_update):
            await _step(True)  # type: ignore[misc]
        for i in range(self.shape.upserts_per_update):
            workflow.upsert_search_attributes([STATUS.value_set(f"{name}-{i}")])
        self.updates += 1
        return name

    @workflow.signal
    def poke(self) -> None:
        self.signals += 1


async def _serve(address: str, task_queue: str, notify_port: int) -> None:
    global NOTIFY_PORT
    NOTIFY_PORT = notify_port
    # Imported here, not at the top: the sandbox re-executes this module for every workflow
    # run, and our settings module is not what a no-op workflow should pay for.
    from runtime.settings import Settings
    from runtime.temporal import worker_options

    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[CeilingWorkflow],
        activities=[noop],
        graceful_shutdown_timeout=timedelta(seconds=2),
        **worker_options(Settings()),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        print("ceiling worker polling", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", default="bench-ceiling")
    parser.add_argument(
        "--notify-port", type=int, default=0, help="UDP port of bench.ceiling_driver's notices"
    )
    args = parser.parse_args()
    from runtime.temporal import run_event_loop

    run_event_loop(_serve(args.address, args.task_queue, args.notify_port))


if __name__ == "__main__":
    main()
