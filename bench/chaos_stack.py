"""The processes of the stack the chaos bench kills (children of `omniflow dev`), Postgres
crashed and started again on its data directory, the workflows' states, and the inventory
and ledger checks run against the stack's database."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psutil

from bench.stack import DevStack
from runtime.embedded_pg import EmbeddedPostgres


def _children(stack: DevStack) -> list[psutil.Process]:
    assert stack.proc is not None
    try:
        return psutil.Process(stack.proc.pid).children()
    except psutil.Error:
        return []


def _find_child(
    stack: DevStack, matches: Callable[[list[str]], bool], timeout: float = 30.0
) -> psutil.Process | None:
    """The running child of `omniflow dev` whose command line `matches` (waiting while the
    supervisor restarts one that died)."""
    deadline = time.monotonic() + timeout
    while True:
        for p in _children(stack):
            try:
                if matches(p.cmdline()) and p.status() != "zombie":
                    return p
            except psutil.Error:
                continue
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def worker_process(stack: DevStack, timeout: float = 30.0) -> psutil.Process | None:
    return _find_child(stack, lambda argv: argv[-2:] == ["-m", "worker"], timeout)


def replica_processes(stack: DevStack, module: str, timeout: float = 30.0) -> list[psutil.Process]:
    """Every running `python -m <module>` child (`worker` or `api`: one a replica), the one
    running longest first, waiting up to `timeout` while there is none."""
    deadline = time.monotonic() + timeout
    while True:
        out = []
        for p in _children(stack):
            try:
                if p.cmdline()[-2:] == ["-m", module] and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                continue
        if out or time.monotonic() > deadline:
            return sorted(out, key=_started)
        time.sleep(0.1)


def temporal_process(stack: DevStack, timeout: float = 30.0) -> psutil.Process | None:
    words = ("temporal", "server", "start-dev")
    return _find_child(stack, lambda argv: all(any(w in a for a in argv) for w in words), timeout)


def _started(p: psutil.Process) -> float:
    try:
        return float(p.create_time())
    except psutil.Error:
        return 0.0


def port_open(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _embedded_pg(stack: DevStack) -> EmbeddedPostgres:
    """The stack's own Postgres (`omniflow dev` keeps it in <data-dir>/pg), driven with its
    own pg_ctl (as the unprivileged system user when we are root, as omniflow dev does)."""
    pg = EmbeddedPostgres(stack.data_dir / "pg", stack.pg_port)
    pg.data_dir = pg.data_dir.resolve()
    pg._prepare_user()
    return pg


def stop_postgres(stack: DevStack, mode: str = "immediate") -> None:
    pg = _embedded_pg(stack)
    out = pg._run("pg_ctl", "-D", str(pg.data_dir), "-m", mode, "-w", "-t", "30", "stop", check=False)
    if out.returncode != 0:
        raise RuntimeError(f"pg_ctl stop failed: {out.stdout} {out.stderr}")


def start_postgres(stack: DevStack) -> None:
    """Start it again on the same data directory and port, with the options omniflow dev uses."""
    _embedded_pg(stack).start()


async def describe_workflows(address: str, ids: list[str]) -> dict[str, str]:
    """Workflow id -> execution status name, for those that exist."""
    from temporalio.client import Client
    from temporalio.service import RPCError, RPCStatusCode

    client = await Client.connect(address)
    sem = asyncio.Semaphore(16)
    out: dict[str, str] = {}

    async def one(wid: str) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    desc = await client.get_workflow_handle(wid).describe()
                except RPCError as exc:
                    if exc.status == RPCStatusCode.NOT_FOUND:
                        return
                    if attempt == 4:
                        raise
                    await asyncio.sleep(1.0)
                    continue
                out[wid] = desc.status.name if desc.status is not None else "UNKNOWN"
                return

    await asyncio.gather(*(one(w) for w in ids))
    return out


def run_checks(stack: DevStack) -> dict[str, dict[str, Any]]:
    env = {"DATABASE_URL": stack.database_url, "PATH": str(Path(sys.executable).parent)}
    out: dict[str, dict[str, Any]] = {}
    for what in ("inventory", "ledger"):
        proc = subprocess.run(
            [sys.executable, "-m", "cli", what, "check"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        m = re.search(r"(\d+) findings", proc.stdout)
        out[what] = {
            "exit": proc.returncode,
            "findings": int(m.group(1)) if m else -1,
            "output": (proc.stdout + proc.stderr)[-2000:],
        }
    return out
