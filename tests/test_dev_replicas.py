"""`omniflow dev --replicas 2`: two API processes on consecutive ports and two workers against
one Postgres and one Temporal server; both APIs answer, both workers poll, one API killed
leaves the other answering while the supervisor restarts it, and SIGTERM stops all of them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from client import OmniflowClient, RetryPolicy
from runtime.ports import port_is_free
from tests.stack import DevStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    s = DevStack(tmp_path_factory.mktemp("replicas") / "data", replicas=2).start()
    yield s
    s.stop()


def _kids(stack: DevStack, module: str) -> list[psutil.Process]:
    assert stack.proc is not None
    out = []
    for p in psutil.Process(stack.proc.pid).children():
        try:
            if p.cmdline()[-2:] == ["-m", module] and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


async def _pollers(address: str) -> dict[str, set[str]]:
    """The identities polling our task queue, for workflow and for activity tasks."""
    from runtime.temporal import connect, task_queue_pollers

    client = await connect(address)
    return {
        "workflow": await task_queue_pollers(client, "omniflow"),
        "activity": await task_queue_pollers(client, "omniflow", activity=True),
    }


def test_the_ready_line_names_both_apis_and_both_answer(stack: DevStack) -> None:
    assert stack.ready_line is not None
    first, second = stack.apis
    assert second == f"http://127.0.0.1:{stack.api_port + 1}"
    assert f"api={first} " in stack.ready_line and f"apis={first},{second} " in stack.ready_line
    for url in stack.apis:
        r = httpx.get(f"{url}/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "workflow_engine": "ok"}
    # One database behind both: a key made through one authenticates on the other.
    made = httpx.post(f"{first}/v1/api-keys", json={"role": "warehouse"}, headers=stack.headers).json()
    r = httpx.get(f"{second}/v1/api-keys", headers={"Authorization": f"Bearer {made['key']}"})
    assert r.status_code == 403  # known (authenticated), not allowed


def test_two_workers_and_two_apis_run_and_both_workers_poll(stack: DevStack) -> None:
    workers, apis = _kids(stack, "worker"), _kids(stack, "api")
    assert len(workers) == 2 and len(apis) == 2
    wanted = {f"{p.pid}@" for p in workers}
    # READY needs both workers polling for workflow tasks; a worker's activity pollers start
    # a moment later, so they are waited for.
    deadline = time.monotonic() + 20
    while True:
        pollers = asyncio.run(_pollers(stack.temporal_address))
        seen = {kind: {i.split("@")[0] + "@" for i in pollers[kind]} for kind in ("workflow", "activity")}
        if all(ids >= wanted for ids in seen.values()):
            break
        assert time.monotonic() < deadline, (pollers, wanted)
        time.sleep(0.5)
    # Each worker serves its own Prometheus endpoint, on consecutive ports.
    for port in (stack.metrics_port, stack.metrics_port + 1):
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


def test_a_killed_api_leaves_the_other_answering_and_comes_back(stack: DevStack) -> None:
    apis = _kids(stack, "api")
    victim = next(p for p in apis if p.environ().get("OMNIFLOW_API_PORT") == str(stack.api_port))
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert not _ready(stack.api)
    retry = RetryPolicy(attempts=4, initial_delay=0.05, max_delay=0.1)
    with OmniflowClient(stack.apis, stack.admin_key, retry=retry) as api:
        # Every read answered while the first replica is down: the client goes to the other.
        assert all(api.ready().ready for _ in range(6))
    deadline = time.monotonic() + 30
    while not _ready(stack.api):
        assert time.monotonic() < deadline, "the killed API was not restarted"
        time.sleep(0.2)
    assert "api 1 exited" in stack.stderr()
    assert len(_kids(stack, "api")) == 2 and victim.pid not in {p.pid for p in _kids(stack, "api")}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_stops_every_replica_and_frees_their_ports(tmp_path_factory: pytest.TempPathFactory) -> None:
    s = DevStack(tmp_path_factory.mktemp("replicas-stop") / "data", replicas=2).start()
    try:
        assert s.proc is not None
        children = [p.pid for p in psutil.Process(s.proc.pid).children(recursive=True)]
        assert len(children) >= 5  # two workers, two APIs, Temporal (and Postgres under it or beside)
    finally:
        took = s.stop()
    assert took < 20, f"SIGTERM took {took:.1f}s"
    assert s.proc.returncode == 0
    time.sleep(0.5)
    assert not [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    for port in (*range(s.api_port, s.api_port + 2), s.temporal_port, s.pg_port):
        assert port_is_free("127.0.0.1", port), f"port {port} still bound after stop"


def test_pollers_are_counted_over_every_partition_of_the_queue(stack: DevStack) -> None:
    """The server splits a queue into partitions, sends each poll to one at random and reports
    each partition's pollers apart; a worker whose polls all went to other partitions than the
    root was once reported absent. Twelve one-shot pollers land on several partitions (all on
    the root with odds 4^-12), and every one of them must be seen."""
    from datetime import timedelta

    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import PollActivityTaskQueueRequest
    from temporalio.service import RPCError

    from runtime.temporal import connect, task_queue_pollers

    names = {f"probe-{i}@vm" for i in range(12)}

    async def probe() -> tuple[set[str], set[str]]:
        client = await connect(stack.temporal_address)
        polls = [
            asyncio.create_task(
                client.workflow_service.poll_activity_task_queue(
                    PollActivityTaskQueueRequest(
                        namespace="default", task_queue=TaskQueue(name="partition-probe"), identity=name
                    ),
                    timeout=timedelta(seconds=4),
                )
            )
            for name in names
        ]
        await asyncio.sleep(1.5)
        everywhere = await task_queue_pollers(client, "partition-probe", activity=True)
        root_only = await task_queue_pollers(client, "partition-probe", activity=True, partitions=1)
        for poll in polls:
            with contextlib.suppress(RPCError):  # the poll's own deadline: no task came
                await poll
        return everywhere, root_only

    everywhere, root_only = asyncio.run(probe())
    assert everywhere >= names
    assert not root_only >= names  # what describing the queue's name alone would have missed
