"""OpenAPI 3.1 `links` on success responses, derived from the document's own route table, so a
stateful client (schemathesis' stateful phase) can chain create → read → act.

One rule for every route, none listed by hand. An item route is `C/{p}` or `C/{p}/…` where `C`
(the collection) has no parameter and `{p}` is the route's only path parameter. Its `p` is
taken from the body of each 2xx JSON response that has the item's identifier field:

- from the collection `C` itself (the create `POST C`: `$response.body#/<field>`; a list
  `GET C` that answers a page: `$response.body#/items/0/<field>`), and from the item's other
  routes (a read links to its actions, an action to the read);
- the identifier field is the one named like the parameter (`code`, `number`, `run_id`) or,
  when the item has no such field, its `id` (`order_id` → `id`, a transfer's `number` → `id`);
- a parameter named `<thing>_id` names the thing everywhere: any response field of that exact
  name supplies it too (a shipment's `order_id` → the order's routes, a run's `run_id`).

A route added later (returns: `POST /v1/returns` answering `id`, `/v1/returns/{id}/…`) gets its
links from the same rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_METHODS = ("get", "put", "post", "delete", "patch")
_PARAM = re.compile(r"\{([^}]+)\}")
_PAGE_ITEMS = "items"  # a list answers {"items": [...], "next_cursor": ...} (api.pagination)


def add_links(schema: dict[str, Any]) -> None:
    """Add `links` to every 2xx JSON response from which another operation's path is known."""
    targets = list(_item_targets(schema))
    for path, method, op in _all_operations(schema):
        for status, response in op.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            fields = _response_fields(schema, response)
            links = {
                target_op["operationId"]: {
                    "operationId": target_op["operationId"],
                    "parameters": {param: f"$response.body#{pointer}"},
                    "description": f"`{param}` of `{target_method.upper()} {target_path}` from this answer.",
                }
                for target_path, target_method, target_op, collection, param in targets
                if (target_path, target_method) != (path, method) and "operationId" in target_op
                for pointer in [_pointer(fields, path, collection, param)]
                if pointer is not None
            }
            if links:
                response["links"] = dict(sorted(links.items()))


def _all_operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def _item_targets(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str, str]]:
    """(path, method, operation, collection, parameter) of each route with one path parameter
    that follows a parameter-free collection path."""
    for path, method, op in _all_operations(schema):
        params = _PARAM.findall(path)
        if len(params) != 1:
            continue
        collection, _, _ = path.partition("/{")
        yield path, method, op, collection, params[0]


def _pointer(fields: tuple[str, set[str]] | None, source: str, collection: str, param: str) -> str | None:
    """The JSON pointer in the source's answer to the target's `param`, if it has one."""
    if fields is None:
        return None
    prefix, names = fields
    same_item = source == collection or source.startswith(f"{collection}/{{{param}}}")
    if same_item and (prefix == "" or source == collection):
        if param in names:
            return f"{prefix}/{param}"
        if "id" in names:
            return f"{prefix}/id"
    if param.endswith("_id") and param in names:
        return f"{prefix}/{param}"
    return None


def _response_fields(schema: dict[str, Any], response: dict[str, Any]) -> tuple[str, set[str]] | None:
    """("", fields) of an object answer; ("/items/0", fields) of a page of objects; else None."""
    body = _resolve(schema, response.get("content", {}).get("application/json", {}).get("schema", {}))
    props = body.get("properties", {})
    if body.get("type") != "object" or not props:
        return None
    items = _resolve(schema, props.get(_PAGE_ITEMS, {}))
    if items.get("type") == "array":
        element = _resolve(schema, items.get("items", {}))
        if element.get("properties"):
            return f"/{_PAGE_ITEMS}/0", set(element["properties"])
    return "", set(props)


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}
