"""The OpenAPI document agrees with the served API (api/openapi.py): every problem status an
operation can serve is documented as application/problem+json with the Problem schema, the
Idempotency-Key header is declared once with what the middleware accepts, status filters are
enums. Built from the app itself, no database: each test walks the whole document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.openapi import IDEMPOTENCY_KEY_PATTERN
from domain.orders import STATUSES as ORDER_STATUSES
from domain.purchasing import PO_STATUSES
from models.operations import CycleCount, Transfer
from runtime.settings import Settings

Operation = tuple[str, str, dict[str, Any]]
ALL_ROLES = {"admin", "channel", "warehouse", "approver", "finance", "readonly"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", temporal_address="127.0.0.1:1"
    )
    return create_app(settings, configure_logs=False)


@pytest.fixture(scope="module")
def spec(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def expected_statuses(path: str, op: dict[str, Any]) -> set[int]:
    """What the operation serves whatever its code does, from facts of the document alone."""
    statuses: set[int] = set()
    roles = set(op["x-roles"])
    if roles != {"public"}:
        statuses |= {401, 503}  # the key is looked up in the database
        if roles != ALL_ROLES:
            statuses.add(403)
    if op.get("x-idempotency"):
        statuses |= {400, 409, 422}
    if "requestBody" in op:
        statuses |= {413, 422}
    if "{" in path:
        statuses |= {404, 422}
    return statuses


def test_every_error_response_is_a_problem(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    assert "HTTPValidationError" not in str(spec)
    checked = 0
    for method, path, op in operations(spec):
        for code, response in op["responses"].items():
            if int(code) < 400 or (path == "/readyz" and code == "503"):  # readiness answers its checks
                continue
            content = response.get("content", {})
            assert list(content) == ["application/problem+json"], f"{method} {path} {code}: {list(content)}"
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
            checked += 1
    assert checked > 300


def test_every_operation_documents_the_problem_statuses_it_serves(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, op in operations(spec):
        documented = {int(c) for c in op["responses"] if int(c) >= 400}
        if lacking := expected_statuses(path, op) - documented:
            missing.append(f"{method} {path}: {sorted(lacking)}")
    assert missing == []


# Statuses these routes serve from their own code (seen in their tests), not from the rules above.
SERVED = [
    ("POST", "/v1/orders", 409),  # the order id is taken
    ("POST", "/v1/orders", 503),  # engine unavailable
    ("GET", "/v1/orders", 404),  # a channel key naming another channel
    ("GET", "/v1/availability", 404),
    ("POST", "/v1/inventory/adjustments", 409),  # the bucket would go negative
    ("POST", "/v1/exceptions/{exception_id}/resolve", 403),  # this role may not decide this kind
    ("GET", "/v1/exceptions", 400),  # a cursor of another sort
    ("GET", "/v1/skus", 400),  # a cursor that is not one (api.pagination)
    ("GET", "/v1/orders", 400),
    ("PATCH", "/v1/orders/{order_id}/ship-to", 409),  # the workflow refuses
]


@pytest.mark.parametrize(("method", "path", "status"), SERVED)
def test_statuses_raised_by_the_code_are_documented(
    spec: dict[str, Any], method: str, path: str, status: int
) -> None:
    assert str(status) in spec["paths"][path][method.lower()]["responses"]


def test_idempotency_key_is_declared_once_with_what_the_api_accepts(spec: dict[str, Any]) -> None:
    declared = 0
    for method, path, op in operations(spec):
        keys = [p for p in op.get("parameters", []) if p["name"].lower() == "idempotency-key"]
        policy = op.get("x-idempotency")
        assert len(keys) == (1 if policy else 0), f"{method} {path}: {len(keys)} Idempotency-Key"
        if keys:
            (key,) = keys
            assert key["in"] == "header" and key["required"] == (policy == "required")
            assert key["schema"] == {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": IDEMPOTENCY_KEY_PATTERN,
            }
            declared += 1
    assert declared > 20
    for route in ("/v1/inventory/adjustments", "/v1/inventory/moves"):
        assert len(spec["paths"][route]["post"]["parameters"]) == 1


def _accepted(key: str) -> bool:
    return re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key) is not None


def test_the_key_pattern_in_examples() -> None:
    assert _accepted("order-123:retry") and _accepted("x") and _accepted("a" * 255)
    assert _accepted("two words") and _accepted("caf\u00e9")
    assert not _accepted("") and not _accepted("a" * 256) and not _accepted(" lead")
    assert not _accepted("tab\there") and not _accepted("nul\x00") and not _accepted("del\x7f")


async def test_the_key_pattern_is_what_the_middleware_accepts(app: FastAPI) -> None:
    """Every Latin-1 character inside a key, sent to an idempotent route without credentials:
    the middleware answers 400 to a key it refuses and lets the others through (to the 401).
    No database is reached on either path."""
    app.state.engine = None  # authentication fails before it is used
    transport = httpx.ASGITransport(app=app)
    disagree, seen = [], set()
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for key in [f"a{chr(c)}b" for c in range(256)] + ["a" * 255, "a" * 256]:
            r = await client.post(
                "/v1/inventory/moves", headers=[(b"Idempotency-Key", key.encode("latin-1"))], json={}
            )
            assert r.status_code in (400, 401), (repr(key), r.status_code, r.text)
            seen.add(r.status_code)
            if (r.status_code == 401) != _accepted(key):
                disagree.append((repr(key), r.status_code))
    assert disagree == []
    assert seen == {400, 401}


def _query(op: dict[str, Any], name: str) -> dict[str, Any]:
    (param,) = [p for p in op["parameters"] if p["in"] == "query" and p["name"] == name]
    return param


def _enum(schema: dict[str, Any]) -> list[str] | None:
    for branch in schema.get("anyOf", [schema]):
        if "enum" in branch:
            return list(branch["enum"])
    return None


def test_no_status_filter_is_a_free_string(spec: dict[str, Any]) -> None:
    free = [
        f"{method} {path} ?{p['name']}"
        for method, path, op in operations(spec)
        for p in op.get("parameters", [])
        if p["in"] == "query" and p["name"].endswith("status") and _enum(p["schema"]) is None
    ]
    assert free == []


def _check_values(table: Any) -> list[str]:
    (check,) = [c for c in table.__table__.constraints if c.name and c.name.endswith("_status")]
    return re.findall(r"'([^']+)'", str(check.sqltext))


def test_status_enums_are_the_lists_the_data_uses(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert _enum(_query(paths["/v1/orders"]["get"], "status")["schema"]) == list(ORDER_STATUSES)
    assert _enum(_query(paths["/v1/purchase-orders"]["get"], "status")["schema"]) == list(PO_STATUSES)
    assert _enum(_query(paths["/v1/transfers"]["get"], "status")["schema"]) == _check_values(Transfer)
    assert _enum(_query(paths["/v1/cycle-counts"]["get"], "status")["schema"]) == _check_values(CycleCount)
    assert _enum(_query(paths["/v1/exceptions"]["get"], "status")["schema"]) == [
        "open",
        "resolved",
        "cancelled",
    ]
