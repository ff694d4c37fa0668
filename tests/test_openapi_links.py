"""OpenAPI links (api/openapi_links.py): every link names an operation of the document and
supplies every path parameter of it from the answer; creates link to their reads and actions;
a route added later gets its links from the same rule. Built from the app, no database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from api.app import create_app
from api.openapi_links import add_links
from runtime.settings import Settings

Link = tuple[str, str, str, str, dict[str, Any]]  # method, path, status, name, link


class ReturnRead(BaseModel):
    id: str
    status: str


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", temporal_address="127.0.0.1:1"
    )
    return create_app(settings, configure_logs=False).openapi()


def links(spec: dict[str, Any]) -> Iterator[Link]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for status, response in op.get("responses", {}).items():
                for name, link in response.get("links", {}).items():
                    yield method.upper(), path, status, name, link


def by_operation_id(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (path, method)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }


def target_of(spec: dict[str, Any], link: dict[str, Any]) -> tuple[str, str]:
    if "operationId" in link:
        return by_operation_id(spec)[link["operationId"]]
    ref = link["operationRef"]
    assert ref.startswith("#/paths/"), ref
    path, method = ref.removeprefix("#/paths/").rsplit("/", 1)
    path = path.replace("~1", "/").replace("~0", "~")
    assert method in spec["paths"][path], ref
    return path, method


def linked(spec: dict[str, Any], method: str, path: str, status: str) -> set[tuple[str, str]]:
    response = spec["paths"][path][method.lower()]["responses"][status]
    return {(m.upper(), p) for p, m in (target_of(spec, link) for link in response.get("links", {}).values())}


def test_every_link_resolves_and_supplies_every_path_parameter(spec: dict[str, Any]) -> None:
    found = list(links(spec))
    assert len(found) > 50
    for method, path, status, name, link in found:
        assert status.startswith("2"), (method, path, status)
        target_path, target_method = target_of(spec, link)
        needed = set(re.findall(r"\{([^}]+)\}", target_path))
        declared = {
            p["name"]
            for p in spec["paths"][target_path][target_method].get("parameters", [])
            if p["in"] == "path"
        }
        assert needed == declared, target_path
        assert set(link["parameters"]) == needed, (method, path, name)
        for expression in link["parameters"].values():
            assert re.fullmatch(r"\$response\.body#(/[a-z_0-9]+)+", expression), expression


def test_each_pointer_names_a_field_of_the_answer(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]

    def fields(node: dict[str, Any], pointer: list[str]) -> bool:
        if "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[1]]
        if not pointer:
            return True
        head, *rest = pointer
        if head.isdigit():
            return fields(node["items"], rest)
        return head in node.get("properties", {}) and fields(node["properties"][head], rest)

    for method, path, status, name, link in links(spec):
        body = spec["paths"][path][method.lower()]["responses"][status]["content"]["application/json"][
            "schema"
        ]
        for expression in link["parameters"].values():
            assert fields(body, expression.split("#", 1)[1].strip("/").split("/")), (method, path, name)


def test_an_order_create_links_to_its_read_and_its_actions(spec: dict[str, Any]) -> None:
    for status in ("200", "202"):
        targets = linked(spec, "POST", "/v1/orders", status)
        assert ("GET", "/v1/orders/{order_id}") in targets
        assert ("POST", "/v1/orders/{order_id}/cancel") in targets
        assert ("POST", "/v1/orders/{order_id}/payment") in targets
    response = spec["paths"]["/v1/orders"]["post"]["responses"]["202"]
    read = next(link for link in response["links"].values() if link["operationId"].startswith("get_order"))
    assert read["parameters"] == {"order_id": "$response.body#/id"}


@pytest.mark.parametrize(
    ("create", "read", "parameter", "field"),
    [
        ("/v1/skus", "/v1/skus/{code}", "code", "/code"),
        ("/v1/locations", "/v1/locations/{code}", "code", "/code"),
        ("/v1/channels", "/v1/channels/{code}", "code", "/code"),
        ("/v1/suppliers", "/v1/suppliers/{code}", "code", "/code"),
        ("/v1/transfers", "/v1/transfers/{number}/ship", "number", "/id"),
        ("/v1/cycle-counts", "/v1/cycle-counts/{count_id}/submit", "count_id", "/id"),
        ("/v1/purchase-orders", "/v1/purchase-orders/{number}/approve", "number", "/number"),
        ("/v1/api-keys", "/v1/api-keys/{key_id}", "key_id", "/id"),
    ],
)
def test_each_create_links_to_its_item(
    spec: dict[str, Any], create: str, read: str, parameter: str, field: str
) -> None:
    responses = spec["paths"][create]["post"]["responses"]
    success = [status for status in responses if status.startswith("2")]
    assert success
    for status in success:
        matching = [
            link for link in responses[status].get("links", {}).values() if target_of(spec, link)[0] == read
        ]
        assert matching, (create, status, read)
        assert all(link["parameters"] == {parameter: f"$response.body#{field}"} for link in matching)


def test_a_list_links_its_first_item_to_the_item_routes(spec: dict[str, Any]) -> None:
    targets = linked(spec, "GET", "/v1/exceptions", "200")
    assert targets >= {
        ("GET", "/v1/exceptions/{exception_id}"),
        ("POST", "/v1/exceptions/{exception_id}/resolve"),
    }
    response = spec["paths"]["/v1/exceptions"]["get"]["responses"]["200"]
    assert {e for link in response["links"].values() for e in link["parameters"].values()} == {
        "$response.body#/items/0/id"
    }


def test_a_route_added_later_gets_links_from_the_same_rule() -> None:
    """The shape of the returns routes: `POST /v1/returns` answers the return, `{id}` names it."""

    app = FastAPI()

    @app.post("/v1/returns", status_code=201)
    def open_return() -> ReturnRead:
        return ReturnRead(id="R1", status="open")

    @app.get("/v1/returns/{id}")
    def read_return(id: str) -> ReturnRead:
        return ReturnRead(id=id, status="open")

    @app.post("/v1/returns/{id}/receive")
    def receive_return(id: str) -> ReturnRead:
        return ReturnRead(id=id, status="received")

    schema = app.openapi()
    add_links(schema)
    assert linked(schema, "POST", "/v1/returns", "201") == {
        ("GET", "/v1/returns/{id}"),
        ("POST", "/v1/returns/{id}/receive"),
    }
    assert linked(schema, "POST", "/v1/returns/{id}/receive", "200") == {("GET", "/v1/returns/{id}")}
