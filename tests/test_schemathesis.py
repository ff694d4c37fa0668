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
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response

BASE_URL = "http://testserver"
FUZZ_EXAMPLES = int(os.environ.get("OMNIFLOW_FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ_EXAMPLES or 10
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.positive_data_acceptance,
]
# A schema-valid request is accepted, or refused for what no schema can know: an id, code or
# cursor that does not exist (404, 400 `bad-cursor`), a state that forbids it (409), a body
# naming what does not exist (422 `unknown …`). 5xx is not_a_server_error's.
ACCEPTED = ["2xx", "404", "409", "5xx"]
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}}}
)
DATA_REFUSALS = {
    400: ("/problems/bad-cursor", r"the cursor is not valid"),
    422: (
        "/problems/validation-error",
        r"unknown (or kit )?(SKU|location|channel|supplier)s? '|has no terms for|does not drop-ship",
    ),
}
# Rules of a request JSON Schema cannot state (one field against another, uniqueness by a
# member, a total over lines, the caller's role): (METHOD, path) → the 422's detail.
_TWICE = r"(listed twice|each SKU once)"
UNSTATED_RULES: dict[tuple[str, str], str] = {
    ("POST", "/v1/transfers"): r"from and to must be different locations",
    ("POST", "/v1/inventory/moves"): r"a move must change location or status",
    ("POST", "/v1/skus"): r"a kit cannot contain itself|" + _TWICE,  # each component once
    ("POST", "/v1/channels"): _TWICE,  # each location once
    ("PUT", "/v1/channels/{code}/policies/{sku}"): _TWICE,
    ("POST", "/v1/suppliers"): _TWICE,
    ("POST", "/v1/purchase-orders"): _TWICE,  # each SKU once
    ("POST", "/v1/purchase-orders/{number}/confirm"): _TWICE,
    ("POST", "/v1/purchase-orders/{number}/bills"): _TWICE,
    ("POST", "/v1/orders"): r"the order total \d+ is larger than|" + _TWICE,
    ("PUT", "/v1/replenishment/factors"): r"`from` must not be after `to`",
    ("POST", "/v1/replenishment/simulate"): r"`from` must not be after `to`",
    ("GET", "/v1/suppliers/{code}/scorecard"): r"the window is at most \d+ days",
    ("GET", "/v1/reports/kpis"): r"`from` must not be after `to`|the window is at most \d+ days",
    ("GET", "/v1/availability/changes"): r"name the channel",  # optional for a channel key only
    # which hosts a webhook may name is a setting (SSRF): loopback and the allowed hosts
    (
        "PUT",
        "/v1/channels/{code}/publishing",
    ): r"not loopback nor an allowed host|must not carry credentials|has no host|URL is not valid",
}

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


def _documented_refusal(operation: Any, response: httpx.Response, key_reused: bool) -> bool:
    """Whether a 4xx answer to a schema-valid request is one of the refusals above."""
    if response.headers.get("content-type") != "application/problem+json":
        return False
    problem = response.json()
    slug, detail = problem.get("type", ""), problem.get("detail", "")
    if key_reused and slug == "/problems/idempotency-key-reused":  # the test sent that key before
        return True
    known = DATA_REFUSALS.get(response.status_code)
    if known and slug == known[0] and re.search(known[1], detail):
        return True
    rule = UNSTATED_RULES.get((operation.method.upper(), operation.path))
    return response.status_code == 422 and rule is not None and re.search(rule, detail) is not None


def _fuzz_operation(operation: Any, send: Send, auth: dict[str, str], keys: dict[str, str]) -> None:
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
        request = _httpx_kwargs(kwargs)
        key_reused = _key_reused(keys, request)
        response = send(request)
        run_checks = checks
        if _documented_refusal(operation, response, key_reused):
            run_checks = [check for check in checks if check is not st_checks.positive_data_acceptance]
        case.validate_response(response, checks=run_checks, headers=auth)

    run()


def _key_reused(keys: dict[str, str], request: dict[str, Any]) -> bool:
    """Whether the request's Idempotency-Key was sent before with another request (the API then
    answers 422 `idempotency-key-reused`: one key a business action, no schema can say it)."""
    headers = {name.lower(): value for name, value in (request.get("headers") or {}).items()}
    key = headers.get("idempotency-key")
    if key is None:
        return False
    what = repr(
        (
            request["method"],
            request["url"],
            request.get("params"),
            request.get("json"),
            request.get("content"),
        )
    )
    return keys.setdefault(key.strip(), what) != what


def _fuzz_all(operations: list[Any], send: Send, auth: dict[str, str]) -> list[str]:
    failures = []
    keys: dict[str, str] = {}
    for operation in operations:
        try:
            _fuzz_operation(operation, send, auth, keys)
        # Schemathesis raises its check failures as a BaseExceptionGroup (FailureGroup).
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation reported, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    return failures


@pytest.mark.usefixtures("worker")
async def test_every_operation_conforms_to_the_document(
    admin: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    document = admin.app.openapi()  # type: ignore[attr-defined]
    results = list(schemathesis.openapi.from_dict(document, config=CONFIG).get_all_operations())
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


STATEFUL_EXAMPLES = FUZZ_EXAMPLES or 15


@pytest.mark.usefixtures("worker")
async def test_linked_scenarios_conform_to_the_document(
    admin: httpx.AsyncClient, keys: dict[str, dict[str, str]], make_key: Callable[..., str]
) -> None:
    """The stateful phase: chains along the document's links (create → read → act) with the
    same checks and the same documented refusals as above. Each scenario has an admin key of its
    own: a scenario may revoke it (`GET /v1/api-keys` → `DELETE` its first item), and its later
    steps are then refused 401, as they must be."""
    document = admin.app.openapi()  # type: ignore[attr-defined]
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    loop = asyncio.get_running_loop()
    sent: dict[str, str] = {}
    answered: dict[str, tuple[httpx.Response, bool]] = {}  # case id → the answer, key reused

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.auth = {"Authorization": f"Bearer {make_key('admin')}"}
            self.revoked = False

        def call(self, case: Any, **kwargs: Any) -> Any:
            request = _httpx_kwargs(case.as_transport_kwargs(base_url=BASE_URL, headers=self.auth))
            reused = _key_reused(sent, request)
            response = asyncio.run_coroutine_threadsafe(admin.request(**request), loop).result(timeout=60)
            answered[case.id] = (response, reused)
            if (
                case.method.upper() == "DELETE"
                and case.path == "/v1/api-keys/{key_id}"
                and response.status_code == 204
            ):
                self.revoked = True
            return Response.from_any(response)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            checks = CHECKS
            raw, reused = answered.pop(case.id)
            if _documented_refusal(case.operation, raw, reused) or (self.revoked and raw.status_code == 401):
                checks = [check for check in CHECKS if check is not st_checks.positive_data_acceptance]
            case.validate_response(response, checks=checks, headers=self.auth)

    run_settings = settings(
        max_examples=STATEFUL_EXAMPLES,
        stateful_step_count=6,
        derandomize=not FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    await asyncio.to_thread(Scenarios.run, settings=run_settings)
