"""No mass assignment: every request body of the OpenAPI document refuses a field it does not
declare — an unknown one, or a read-only field of the resource the route answers with (`id`,
`status`, `created_at`, a key's `key`, a target's `secret`, …) — with a 422 naming the field,
at the top of the body and inside every nested object. The bodies are request models on
api.schemas.RequestModel (`extra="forbid"`), which the document states as
`additionalProperties: false`; both are checked here for every operation with a body."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

UNKNOWN = "not_a_field_of_ours"
# Free-form by design, checked by the route against what it declares elsewhere: a resolve's
# `data` against the exception action's schema (domain/exception_actions.py, 422 naming the field).
FREE_FORM = {("ResolveBody", "data")}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("post", "put", "patch", "delete") and "requestBody" in op
    ]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_schema(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    return _resolve(spec, op["requestBody"]["content"]["application/json"]["schema"])


def _response_fields(spec: dict[str, Any], op: dict[str, Any]) -> set[str]:
    for status, response in sorted(op["responses"].items()):
        if status.startswith("2") and "application/json" in response.get("content", {}):
            schema = _resolve(spec, response["content"]["application/json"]["schema"])
            return set(schema.get("properties", {}))
    return set()


def _objects(
    spec: dict[str, Any], schema: dict[str, Any], at: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every object a body can hold, with where it sits (list items at index 0)."""
    schema = _resolve(spec, schema)
    if schema.get("type") == "array" and "items" in schema:
        return _objects(spec, schema["items"], (*at, 0))
    for alternative in schema.get("anyOf", []):
        if _resolve(spec, alternative).get("type") in ("object", "array"):
            return _objects(spec, alternative, at)
    if schema.get("type") != "object" or "properties" not in schema:
        return []
    found = [(at, schema)]
    for name, prop in schema["properties"].items():
        if (schema.get("title"), name) not in FREE_FORM:
            found += _objects(spec, prop, (*at, name))
    return found


def _nest(at: tuple[str | int, ...], leaf: dict[str, Any]) -> Any:
    """A body that holds `leaf` at `at` (and nothing else)."""
    if not at:
        return leaf
    head, rest = at[0], at[1:]
    return [_nest(rest, leaf)] if isinstance(head, int) else {head: _nest(rest, leaf)}


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_every_body_schema_says_additional_properties_false(admin: httpx.AsyncClient) -> None:
    spec = (await admin.get("/openapi.json")).json()
    open_ = []
    checked = 0
    for method, path, op in _operations(spec):
        for at, schema in _objects(spec, _body_schema(spec, op), ()):
            checked += 1
            if schema.get("additionalProperties") is not False:
                open_.append(f"{method} {path} at {list(at)}: {schema.get('title')}")
    assert open_ == [], "request objects that take any field:\n" + "\n".join(open_)
    assert checked > 60


async def test_unknown_and_read_only_fields_are_refused_naming_the_field(admin: httpx.AsyncClient) -> None:
    """For every operation with a body: an unknown field at every level of the body, and each
    read-only field of what the route answers, sent alone (with an Idempotency-Key, so that only
    the body is judged) → 422 with an error at exactly that field."""
    spec = (await admin.get("/openapi.json")).json()
    missed: list[str] = []
    sent = 0
    for method, path, op in _operations(spec):
        schema = _body_schema(spec, op)
        objects = _objects(spec, schema, ())
        top = next((s for at, s in objects if at in ((), (0,))), {})
        read_only = _response_fields(spec, op) - set(top.get("properties", {}))
        cases = [(at, UNKNOWN) for at, _ in objects]
        cases += [(objects[0][0], name) for name in sorted(read_only) if objects]
        for at, name in cases:
            body = _nest(at, {name: "x"})
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            r = await admin.request(method, _url(path), json=body, headers=headers)
            sent += 1
            locs = [e["loc"] for e in r.json().get("errors", [])] if r.status_code == 422 else []
            if ["body", *at, name] not in locs:
                missed.append(f"{method} {path} {['body', *at, name]}: {r.status_code} {locs[:3]}")
    assert missed == [], "fields taken or not named:\n" + "\n".join(missed)
    assert sent > 100


async def test_a_read_only_field_among_good_ones_is_refused(admin: httpx.AsyncClient) -> None:
    """A valid body plus one read-only field is refused whole: nothing is created."""
    good = {"role": "readonly", "name": "mass assignment"}
    for extra in (
        {"id": "key_mine"},
        {"key": "omf_chosen_by_the_caller"},
        {"created_at": "2026-01-01T00:00:00Z"},
    ):
        r = await admin.post("/v1/api-keys", json={**good, **extra})
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["loc"] == ["body", *extra] and error["type"] == "extra_forbidden"
    listed = (await admin.get("/v1/api-keys")).json()["items"]
    assert not any(k["name"] == "mass assignment" for k in listed)
    sku = {"code": "MA-1", "name": "Mass", "status": "active", "created_at": "2026-01-01T00:00:00Z"}
    r = await admin.post("/v1/skus", json=sku, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["errors"]} >= {("body", "created_at")}
    assert (await admin.get("/v1/skus/MA-1")).status_code == 404
