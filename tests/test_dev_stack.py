"""`omniflow dev` as scripts and people use it: real processes on free ports."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from runtime.embedded_pg import EmbeddedPostgres
from runtime.ports import free_port, port_is_free
from tests.stack import DevStack, run_dev_expecting_failure

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    s = DevStack(tmp_path_factory.mktemp("stack") / "data").start()
    yield s
    took = s.stop()
    assert took < 20, f"SIGTERM took {took:.1f}s"


def test_ready_line_names_the_urls_and_the_stack_answers(stack: DevStack) -> None:
    assert stack.ready_line is not None
    assert f"api={stack.api}" in stack.ready_line
    assert f"docs={stack.api}/docs" in stack.ready_line
    assert f"ui=http://127.0.0.1:{stack.ui_port}" in stack.ready_line
    metrics = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    assert f"metrics={metrics}" in stack.ready_line
    assert "temporal_worker_task_slots_available" in httpx.get(metrics).text  # the worker's own
    r = httpx.get(f"{stack.api}/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "workflow_engine": "ok"}
    assert httpx.get(f"{stack.api}/docs").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{stack.ui_port}/").status_code == 200
    # The admin key comes from OMNIFLOW_ADMIN_KEY.
    assert httpx.get(f"{stack.api}/v1/api-keys", headers=stack.headers).status_code == 200


def test_search_attributes_are_registered(stack: DevStack) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    from runtime.temporal import connect

    async def names() -> set[str]:
        client = await connect(stack.temporal_address)
        resp = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        return set(resp.custom_attributes)

    assert {"OmniStatus", "OmniException", "OmniChannel", "OmniPriority"} <= asyncio.run(names())


def test_keys_cli_creates_a_working_key(stack: DevStack) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "create", "--role", "channel", "--channel", "web"],
        env={"DATABASE_URL": stack.database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("omf_")
    r = httpx.get(f"{stack.api}/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403  # a known key of the wrong role: authenticated, not allowed


def test_logs_are_json_with_request_and_workflow_ids(stack: DevStack) -> None:
    httpx.get(f"{stack.api}/healthz", headers={"X-Request-ID": "e2e-log-check"})
    from temporalio.client import Client, ScheduleActionExecutionStartWorkflow

    async def run_housekeeping() -> None:
        client = await Client.connect(stack.temporal_address)
        handle = client.get_schedule_handle("omniflow-housekeeping")
        await handle.trigger()
        for _ in range(100):
            desc = await handle.describe()
            if desc.info.recent_actions:
                action = desc.info.recent_actions[-1].action
                assert isinstance(action, ScheduleActionExecutionStartWorkflow)
                wf = client.get_workflow_handle(action.workflow_id)
                await wf.result()
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the schedule did not run")

    asyncio.run(run_housekeeping())
    time.sleep(0.5)
    lines = [json.loads(ln) for ln in stack.stderr().splitlines() if ln.startswith("{")]
    assert any(ln.get("request_id") == "e2e-log-check" and ln.get("path") == "/healthz" for ln in lines)
    activity_lines = [ln for ln in lines if ln.get("activity_type") == "purge_idempotency_records"]
    assert activity_lines, "the activity logged nothing with its ids"
    assert activity_lines[0]["workflow_id"].startswith("housekeeping")


def _is_worker(p: psutil.Process) -> bool:
    try:
        return p.cmdline()[-2:] == ["-m", "worker"]
    except psutil.Error:  # gone, or a zombie not yet reaped
        return False


def test_a_killed_worker_is_restarted(stack: DevStack) -> None:
    assert stack.proc is not None
    worker = next(p for p in psutil.Process(stack.proc.pid).children() if _is_worker(p))
    worker.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = psutil.Process(stack.proc.pid).children()
        again = [p for p in kids if p.pid != worker.pid and _is_worker(p)]
        if again:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the worker was not restarted")
    assert "worker exited" in stack.stderr()


def test_restart_finds_the_same_data_and_sigterm_stops_everything(tmp_path: Path) -> None:
    s = DevStack(tmp_path / "data").start()
    try:  # a stack left running by a failed test holds a Temporal, a Postgres and two processes
        created = httpx.post(
            f"{s.api}/v1/api-keys", json={"role": "warehouse"}, headers=s.headers, timeout=30
        ).json()
        assert s.proc is not None
        children = [p.pid for p in psutil.Process(s.proc.pid).children(recursive=True)]
    finally:
        took = s.stop()
    assert took < 20, f"SIGTERM took {took:.1f}s"
    assert s.proc.returncode == 0
    time.sleep(0.5)
    assert not [
        pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    for port in (s.api_port, s.temporal_port, s.ui_port, s.pg_port, s.metrics_port):
        assert port_is_free("127.0.0.1", port), f"port {port} still bound after stop"

    again = DevStack(
        tmp_path / "data",
        api_port=s.api_port,
        temporal_port=s.temporal_port,
        ui_port=s.ui_port,
        pg_port=s.pg_port,
    ).start()
    try:
        r = httpx.get(f"{again.api}/v1/api-keys", headers={"Authorization": f"Bearer {created['key']}"})
        assert r.status_code == 403  # the warehouse key from the first run still authenticates
        from temporalio.client import Client

        async def schedule_survived() -> str:
            client = await Client.connect(again.temporal_address)
            return (await client.get_schedule_handle("omniflow-housekeeping").describe()).id

        assert asyncio.run(schedule_survived()) == "omniflow-housekeeping"
    finally:
        again.stop()


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code, err = run_dev_expecting_failure(["--api-port", str(port)], {}, tmp_path / "d")
    assert code == 2
    assert (
        err.strip() == f"error: OMNIFLOW_API_PORT: port {port} on 127.0.0.1 is already in use "
        "(set OMNIFLOW_API_PORT to another port)"
    )


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    dead = free_port()
    code, err = run_dev_expecting_failure(
        ["--api-port", str(free_port())],
        {"DATABASE_URL": f"postgresql://u:secret@127.0.0.1:{dead}/x"},
        tmp_path,
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: DATABASE_URL: cannot connect to postgresql://u:***@127.0.0.1")
    assert "secret" not in err


def test_a_missing_temporal_binary_is_one_clear_line(tmp_path: Path) -> None:
    code, err = run_dev_expecting_failure(
        ["--api-port", str(free_port())], {"OMNIFLOW_TEMPORAL_BIN": str(tmp_path / "nope")}, tmp_path / "d"
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: OMNIFLOW_TEMPORAL_BIN: the Temporal CLI was not found")


def test_external_servers_start_nothing_embedded(
    stack: DevStack, pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    import psycopg

    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE external_e2e")
    ext = DevStack(
        tmp_path / "ext",
        extra_env={
            "DATABASE_URL": pg_server.admin_url("external_e2e"),
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "OMNIFLOW_TASK_QUEUE": "external-e2e",
        },
    ).start()
    try:
        assert httpx.get(f"{ext.api}/readyz").status_code == 200
        assert not (tmp_path / "ext" / "pg").exists()
        assert not (tmp_path / "ext" / "temporal.sqlite").exists()
        assert port_is_free("127.0.0.1", ext.pg_port)
        assert port_is_free("127.0.0.1", ext.temporal_port)
    finally:
        assert ext.stop() < 20
