"""What keeps workflows deterministic now that the worker runs them without the SDK's sandbox
(Settings.workflow_sandbox, off in the worker for its cost per workflow task):

1. Workflow code (workflows/, and domain/ which they pass through) imports nothing that reads a
   clock, draws random numbers, does I/O or starts threads, and never calls datetime.now()
   and friends: checked here on the source, so a new import fails the suite, not production.
2. Every workflow the test suite runs, runs in the sandbox (tests/conftest.py's settings), and
   every recorded history replays in it (tests/test_replay.py uses the Replayer's sandbox):
   a workflow that reads the clock or does I/O on any tested path fails there, as below.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from runtime.settings import Settings
from runtime.temporal import worker_options
from tests.clock_workflow import ReadsTheClock

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_CODE = ("workflows", "domain")
# Modules a workflow must not use (their parsing-only relatives, like urllib.parse, are fine).
FORBIDDEN = {
    "time",
    "random",
    "secrets",
    "uuid",
    "os",
    "sys",
    "socket",
    "select",
    "selectors",
    "ssl",
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent",
    "signal",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "sqlite3",
    "logging",
    "urllib.request",
    "http",
    "requests",
    "httpx",
    "aiohttp",
    "sqlalchemy",
    "sqlmodel",
    "psycopg",
    "asyncpg",
    "structlog",
}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def violations(source: str) -> list[str]:
    """Each forbidden import or clock call in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if any(".".join(parts[: i + 1]) in FORBIDDEN for i in range(len(parts))):
                found.append(f"line {getattr(node, 'lineno', 0)}: import {name}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in CLOCK_CALLS
        ):
            found.append(f"line {node.lineno}: {node.func.value.id}.{node.func.attr}()")
    return found


def test_workflow_code_imports_no_clock_randomness_or_io() -> None:
    modules = [p for d in WORKFLOW_CODE for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(modules) > 20
    bad = {str(p.relative_to(ROOT)): v for p in modules if (v := violations(p.read_text()))}
    assert not bad, f"workflow code must stay deterministic: {bad}"


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.time()",
        "from os import environ",
        "from urllib.request import urlopen",
        "import concurrent.futures",
        "from datetime import datetime\nstarted = datetime.now()",
        "import random",
    ],
)
def test_the_check_catches_a_clock_randomness_or_io(source: str) -> None:
    assert violations(source)


def test_the_check_lets_pure_code_through() -> None:
    assert violations("from urllib.parse import urlsplit\nfrom datetime import timedelta\nimport hmac") == []


async def test_a_workflow_reading_the_clock_fails_in_the_sandbox_the_tests_run_in(
    temporal_client: Client, settings: Settings
) -> None:
    assert settings.workflow_sandbox
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    options = worker_options(settings)
    async with Worker(temporal_client, task_queue=queue, workflows=[ReadsTheClock], **options):
        handle = await temporal_client.start_workflow(
            "ReadsTheClock", id=f"clock-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert "time.time" in str(failed.value.cause)


def test_the_worker_runs_without_the_sandbox_and_the_tests_with_it(settings: Settings) -> None:
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    assert isinstance(worker_options(Settings())["workflow_runner"], UnsandboxedWorkflowRunner)
    assert isinstance(worker_options(settings)["workflow_runner"], SandboxedWorkflowRunner)
