"""Every error is RFC 9457 problem+json; bad input is never a 500; no stack traces."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from api.auth import guard
from api.problems import Problem
from api.schemas import RequestModel
from api.temporal import Updates, update
from runtime.db import make_async_engine
from runtime.ports import free_port

PROBLEM = "application/problem+json"


class Boom(RequestModel):
    n: int


def _is_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in r.text
    return body


async def test_unknown_route_is_404_problem(admin: httpx.AsyncClient) -> None:
    body = _is_problem(await admin.get("/v1/nothing-here"), 404)
    assert "/v1/nothing-here" in body["detail"]


async def test_wrong_method_is_405_problem(admin: httpx.AsyncClient) -> None:
    _is_problem(await admin.put("/v1/api-keys"), 405)


async def test_validation_error_names_the_field(admin: httpx.AsyncClient) -> None:
    body = _is_problem(await admin.post("/v1/api-keys", json={"role": "admin", "colour": "red"}), 422)
    assert body["errors"] == [
        {"loc": ["body", "colour"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    ]
    assert "colour" in body["detail"]


async def test_malformed_json_is_422_not_500(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/v1/api-keys", content=b'{"role": ', headers={"content-type": "application/json"})
    _is_problem(r, 422)


async def test_oversized_body_is_413_by_header_and_by_stream(admin: httpx.AsyncClient) -> None:
    limit = admin.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    big = b'{"role": "admin", "name": "' + b"x" * (limit + 10) + b'"}'
    _is_problem(
        await admin.post("/v1/api-keys", content=big, headers={"content-type": "application/json"}), 413
    )

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = await admin.post("/v1/api-keys", content=chunks(), headers={"content-type": "application/json"})
    _is_problem(r, 413)


async def test_internal_errors_are_problems_without_details(admin: httpx.AsyncClient) -> None:
    app = admin.app  # type: ignore[attr-defined]

    @app.post("/v1/_test/boom", **guard("any"))
    async def boom(body: Boom) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    body = _is_problem(await admin.post("/v1/_test/boom", json={"n": 1}), 500)
    assert "hunter2" not in str(body)
    assert body["request_id"]


async def test_every_response_carries_a_request_id(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await admin.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32


async def test_database_down_is_503_problem_not_500(admin: httpx.AsyncClient) -> None:
    """Postgres restarting or unreachable: 503 with Retry-After (the client retries), also for
    a write whose Idempotency-Key cannot be claimed, and the key is not left in flight."""
    app = admin.app  # type: ignore[attr-defined]
    good = app.state.engine
    app.state.engine = make_async_engine(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", pool_size=1
    )
    try:
        body = _is_problem(await admin.get("/v1/orders"), 503)
        assert body["type"] == "/problems/database-unavailable"
        r = await admin.post(
            "/v1/inventory/adjustments",
            headers={"Idempotency-Key": "db-down-1"},
            json={"sku": "X", "location": "Y", "delta": 1, "reason": "found"},
        )
        _is_problem(r, 503)
        assert r.headers["retry-after"] == "2"
    finally:
        await app.state.engine.dispose()
        app.state.engine = good
    assert (await admin.get("/v1/orders")).status_code == 200


async def test_update_not_answered_in_time_is_503() -> None:
    """A workflow update the worker did not answer within the RPC timeout (worker down or
    busy) is 503 engine-unavailable, not 500: the caller retries and the validator refuses
    a step that did happen meanwhile."""

    class Handle:
        async def execute_update(self, *args: Any, **kwargs: Any) -> None:
            raise WorkflowUpdateRPCTimeoutOrCancelledError()

    class FakeClient:
        def get_workflow_handle(self, workflow_id: str) -> Handle:
            return Handle()

    with pytest.raises(Problem) as exc:
        await update(Updates(FakeClient(), 0.1), "order-x", "pick", None, workflow="Order")  # type: ignore[arg-type]
    assert exc.value.status_code == 503
