"""Every operation of the OpenAPI document, fuzzed by schemathesis against the real app (test
Postgres, time-skipping Temporal, the real worker), authenticated as admin: no 5xx, every status
and content type answered is documented for the operation, and every body conforms to its schema.

Schemathesis generates the requests (Hypothesis strategies from the document) and runs the checks;
the requests go through the `admin` httpx client in the test's own event loop, because the app's
engine and Temporal client belong to that loop (schemathesis' own ASGI transport would run the
app in a loop of its own). Hypothesis runs in a worker thread and hands each request to the loop.

`make test`: 10 examples an operation, derandomized. `make fuzz`: OMNIFLOW_FUZZ_EXAMPLES an
operation, random each run (the failing request is printed as a curl command)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks as st_checks
from schemathesis.core.result import Ok

BASE_URL = "http://testserver"
FUZZ_EXAMPLES = int(os.environ.get("OMNIFLOW_FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ_EXAMPLES or 10
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]

# (METHOD, path) → checks not run for it, each with the finding that keeps it out. Empty: every
# check runs on every operation.
EXCLUDED: dict[tuple[str, str], list[Any]] = {}

# Long polls wait up to the `wait` they are given (≤ 30 s) when nothing changes: drawn waits are
# capped so the run stays bounded; what a long poll answers is the same at any wait.
MAX_WAIT_SECONDS = 0.05

Send = Callable[[dict[str, Any]], httpx.Response]


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """requests-style keyword arguments (schemathesis' serialization) → httpx's."""
    out = {k: v for k, v in kwargs.items() if k in ("method", "url", "headers", "params", "json", "files")}
    if kwargs.get("cookies"):
        out["cookies"] = kwargs["cookies"]
    data = kwargs.get("data")
    if isinstance(data, str | bytes):
        out["content"] = data
    elif data is not None:
        out["data"] = data
    return out


def _fuzz_operation(operation: Any, send: Send, auth: dict[str, str]) -> None:
    excluded = EXCLUDED.get((operation.method.upper(), operation.path), [])
    checks = [check for check in CHECKS if check not in excluded]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=not FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Any) -> None:
        if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int | float):
            case.query["wait"] = min(case.query["wait"], MAX_WAIT_SECONDS)
        kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=auth)
        response = send(_httpx_kwargs(kwargs))
        case.validate_response(response, checks=checks, headers=auth)

    run()


def _fuzz_all(operations: list[Any], send: Send, auth: dict[str, str]) -> list[str]:
    failures = []
    for operation in operations:
        try:
            _fuzz_operation(operation, send, auth)
        # Schemathesis raises its check failures as a BaseExceptionGroup (FailureGroup).
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation reported, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    return failures


@pytest.mark.usefixtures("worker")
async def test_every_operation_conforms_to_the_document(
    admin: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    document = admin.app.openapi()  # type: ignore[attr-defined]
    results = list(schemathesis.openapi.from_dict(document).get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    # Every operation of the document is fuzzed: none is left out as one schemathesis cannot read.
    assert len(operations) == sum(len(methods) for methods in document["paths"].values()), results
    loop = asyncio.get_running_loop()

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(admin.request(**kwargs), loop).result(timeout=60)

    failures = await asyncio.to_thread(_fuzz_all, operations, send, keys["admin"])
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n\n" + "\n\n".join(
        failures
    )
