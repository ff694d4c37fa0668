"""The Temporal client, built the same way in the API, the worker, the CLI and tests. (Registering
our search attributes on a dev or test server is `cli.temporal_dev.ensure_search_attributes`.)"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.client import Client, Interceptor
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from runtime.errors import StartupError

if TYPE_CHECKING:
    from runtime.settings import Settings


async def connect(
    address: str,
    namespace: str = "default",
    *,
    lazy: bool = False,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """`interceptors`: runtime.telemetry's tracing (a worker built on the client uses them
    too); `runtime`: a Temporal SDK runtime of the process's own, when it has one."""
    return await Client.connect(
        address, namespace=namespace, lazy=lazy, interceptors=interceptors, runtime=runtime
    )


async def connect_or_fail(
    address: str, namespace: str, setting: str, within: float = 30.0, **options: Any
) -> Client:
    """Connect, retrying for `within` seconds; fail with one line naming the setting.
    `options`: those of `connect`."""
    deadline = asyncio.get_running_loop().time() + within
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            return await connect(address, namespace, **options)
        except Exception as exc:  # the SDK raises RuntimeError with a transport message
            last = exc
            await asyncio.sleep(0.5)
    raise StartupError(setting, f"cannot reach Temporal at {address}: {last}")


def worker_options(settings: Settings) -> dict[str, Any]:
    """Worker settings, shared by our worker and the benchmark's ceiling worker (which must run
    with the same ones). Also lets this process write bytecode: the workflow sandbox executes
    each workflow module afresh for every workflow run, and with PYTHONDONTWRITEBYTECODE set
    (usual in containers and CI) it would compile the module's source every time (measured:
    ~4 ms of worker CPU per order). `Settings.workflow_sandbox` chooses the runner: the sandbox
    re-imports each workflow's modules for every run and proxies what they touch (measured:
    replaying the happy-path order costs ~18-20 ms of CPU in it, ~7-14 ms without)."""
    sys.dont_write_bytecode = False
    sandboxed = settings.workflow_sandbox
    return {
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "workflow_runner": SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
    }


# The server splits a task queue into this many partitions by default
# (matching.numTaskqueueReadPartitions). Each poll goes to one of them, and DescribeTaskQueue
# on a queue's name reports only the root partition's pollers, so a worker whose polls all
# landed elsewhere looks absent for up to a minute-long poll (seen in CI).
TASK_QUEUE_PARTITIONS = 4


async def task_queue_pollers(
    client: Client, task_queue: str, activity: bool = False, partitions: int = TASK_QUEUE_PARTITIONS
) -> set[str]:
    """The identities of the workers polling `task_queue` (for workflow tasks, or for activity
    tasks), over its first `partitions` partitions (all, by default; 1 is the root alone); a
    partition the server does not have reports none."""
    from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    kind = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY if activity else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    names = [task_queue] + [f"/_sys/{task_queue}/{i}" for i in range(1, partitions)]
    identities: set[str] = set()
    for name in names:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=name, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=kind,
            )
        )
        identities |= {p.identity for p in resp.pollers}
    return identities


T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a worker process's main coroutine on uvloop where it exists (a cheaper event loop
    than asyncio's own; the API gets it through uvicorn)."""
    try:
        import uvloop
    except ImportError:  # Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
