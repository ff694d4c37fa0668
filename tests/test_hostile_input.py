"""Hostile input: a NUL character (which Postgres text cannot hold) in a path parameter, a
query parameter or a JSON string is a 422 naming where it is, on every route, never a 500.

The path and the query are refused by the outermost middleware (api/middleware.py); JSON
strings by the base of every request body (api.schemas.RequestModel). The walks below read
the app's own OpenAPI document, so a route added later is covered without editing this file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.openapi import NO_NUL_PATTERN, trimmed_pattern
from api.schemas import RequestModel
from tests.orders_api import Headers, create, order_body

Operation = tuple[str, str, dict[str, Any]]


def operations(app: FastAPI) -> Iterator[Operation]:
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def _string_schema(schema: dict[str, Any]) -> bool:
    branches = schema.get("anyOf", [schema])
    return any(
        b.get("type") == "string" or (b.get("type") == "array" and b.get("items", {}).get("type") == "string")
        for b in branches
    )


def _url(path: str, params: list[dict[str, Any]], nul_in: str | None) -> str:
    for p in params:
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", "%00" if p["name"] == nul_in else "x")
    return path


def _assert_refused(r: httpx.Response, loc: list[Any]) -> None:
    assert r.status_code == 422, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"] == "/problems/validation-error"
    assert loc in [e["loc"] for e in problem["errors"]], problem


async def test_a_nul_in_any_path_parameter_is_a_422_on_every_route(admin: httpx.AsyncClient) -> None:
    tried = 0
    for method, path, op in operations(admin.app):  # type: ignore[attr-defined]
        params = op.get("parameters", [])
        for p in (p for p in params if p["in"] == "path"):
            r = await admin.request(method, _url(path, params, p["name"]), json={}, headers=_key())
            _assert_refused(r, ["path", p["name"]])
            tried += 1
    assert tried > 40  # the walk found the routes (not an empty document)


async def test_a_nul_in_any_string_query_parameter_is_a_422_on_every_route(admin: httpx.AsyncClient) -> None:
    tried = 0
    for method, path, op in operations(admin.app):  # type: ignore[attr-defined]
        params = op.get("parameters", [])
        for p in (p for p in params if p["in"] == "query" and _string_schema(p["schema"])):
            url = _url(path, params, None)
            r = await admin.request(method, url, params={p["name"]: "a\x00b"}, headers=_key())
            _assert_refused(r, ["query", p["name"]])
            tried += 1
    assert tried > 30


async def test_the_examples_of_the_issue(admin: httpx.AsyncClient) -> None:
    _assert_refused(await admin.get("/v1/skus/%00"), ["path", "code"])
    _assert_refused(await admin.get("/v1/exceptions?kind=%00"), ["query", "kind"])
    _assert_refused(await admin.get("/v1/nowhere/%00"), ["path"])  # no route: still not a 500
    _assert_refused(await admin.get("/v1/skus?%00=x"), ["query", "\x00"])


async def test_a_nul_in_an_order_s_ship_to_name_is_a_422(
    api: httpx.AsyncClient, keys: dict[str, Headers]
) -> None:
    body = order_body(ship_to={**order_body()["ship_to"], "name": "A\u0000da"})
    _assert_refused(await create(api, keys["web"], body), ["body", "ship_to", "name"])
    r = await create(api, keys["web"], order_body(ship_to={**order_body()["ship_to"], "name": "Ada"}))
    assert r.status_code == 202, r.text  # the same order without the NUL is taken


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


# -- JSON bodies: every string of every request body ----------------------------------


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:
            schema = next(b for b in schema["anyOf"] if b.get("type") != "null")
        else:
            return schema


def _free(schema: dict[str, Any]) -> bool:
    """No pattern but the no-NUL one the document adds to each free-text string (api.openapi)."""
    return schema.get("pattern") in (None, NO_NUL_PATTERN, trimmed_pattern(schema.get("minLength", 0)))


def string_leaves(
    schema: dict[str, Any], components: dict[str, Any], depth: int = 0
) -> Iterator[tuple[list[Any], Any]]:
    """(loc under the body, a body with "a\\u0000b" at that loc) for each free-text string
    leaf: no pattern (but the no-NUL one), enum or format of its own (those refuse a NUL already, as a mismatch)."""
    schema = _resolve(schema, components)
    if depth > 6:
        return
    if schema.get("type") == "object":
        for name, prop in schema.get("properties", {}).items():
            for loc, value in string_leaves(prop, components, depth + 1):
                yield [name, *loc], {name: value}
    elif schema.get("type") == "array":
        for loc, value in string_leaves(schema.get("items", {}), components, depth + 1):
            yield [0, *loc], [value]
    elif schema.get("type") == "string" and not {"enum", "format", "const"} & schema.keys() and _free(schema):
        yield [], "a\x00b"


async def test_a_nul_in_any_json_string_of_any_request_body_is_a_422_naming_it(
    admin: httpx.AsyncClient,
) -> None:
    app: FastAPI = admin.app  # type: ignore[attr-defined]
    components = app.openapi()["components"]["schemas"]
    tried = 0
    for method, path, op in operations(app):
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        url = _url(path, op.get("parameters", []), None)
        for loc, body in string_leaves(content["schema"], components):
            r = await admin.request(method, url, json=body, headers=_key())
            assert r.status_code == 422, f"{method} {path} {loc}: {r.status_code} {r.text}"
            # The field is named; within a list or dict of strings, the field holding it.
            where = ["body", *loc]
            named = [e for e in r.json()["errors"] if e["loc"] == where[: max(len(e["loc"]), 2)]]
            assert any("NUL" in e["msg"] for e in named), f"{method} {path} {loc}: {r.json()['errors']}"
            tried += 1
    assert tried > 30


def _request_models() -> set[str]:
    found: set[str] = set()
    todo = [RequestModel]
    while todo:
        cls = todo.pop()
        found |= {cls.__name__, f"{cls.__module__}.{cls.__name__}".replace(".", "__")}
        todo.extend(cls.__subclasses__())
    return found


async def test_every_request_body_is_a_request_model(admin: httpx.AsyncClient) -> None:
    """What the rule rests on: no body reaches a route but through RequestModel."""
    app: FastAPI = admin.app  # type: ignore[attr-defined]
    models = _request_models()
    for method, path, op in operations(app):
        content = op.get("requestBody", {}).get("content", {})
        assert set(content) <= {"application/json"}, (method, path, content)
        for media in content.values():
            schema = media["schema"]
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            assert ref is not None, (method, path, schema)
            assert ref.rsplit("/", 1)[1] in models, (method, path, ref)


@pytest.mark.parametrize("value", [{"k\x00": "v"}, ["ok", "n\x00"], {"k": ["a", {"b": "c\x00"}]}])
def test_the_rule_reaches_into_untyped_values(value: Any) -> None:
    class Free(RequestModel):
        data: dict[str, Any] | list[Any]

    with pytest.raises(ValueError, match="NUL"):
        Free.model_validate({"data": value})
