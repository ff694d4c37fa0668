"""The OpenAPI document as the API serves it, by one pass over FastAPI's own document.

FastAPI documents a 422 as `application/json` `HTTPValidationError` and nothing else; every
error the API sends is `application/problem+json` (api.problems). `install(app)` makes
`app.openapi()` (what /openapi.json, /docs and the middlewares read) add, to every operation,
each problem status it can serve, under `application/problem+json` with the `Problem` schema:

- from the route's declaration: a key (401; 503 as the key lookup reads the database), a role
  check narrower than every role (403), an idempotency policy (400 malformed or missing key,
  409 in flight, 422 reused for another request), a body (413, 422), parameters (422), a path
  id (404);
- from the code the route runs: every `Problem(<status>, …)` raised by the endpoint, its
  dependencies and the api functions they call (not_found, conflict, engine_unavailable, the
  workflow and domain refusals of api.temporal and api.domain_errors), walked in their source.

It adds `links` to success responses (create → read → act, api.openapi_links) and declares the
`Idempotency-Key` header once per operation that takes one (FastAPI
appended guard's declaration to a route's own `Header(...)`), with what the middleware accepts.

`serve_docs(app)` serves /docs (Swagger UI) and /redoc with their scripts and styles from the
API itself (the files the fastapi-offline package ships): no CDN, so they work offline."""

from __future__ import annotations

import ast
import importlib.resources
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.auth import ALL_ROLES, PUBLIC
from api.domain_errors import STATUS_OF
from api.openapi_links import add_links
from api.problems import PROBLEM_JSON, Problem

# What api/idempotency.py accepts (after trimming the ends): 1-255 printable characters.
# Printable ASCII is what an HTTP header carries; the middleware also takes printable Latin-1.
IDEMPOTENCY_KEY_MAX = 255
_VISIBLE = r"!-~\u00a1-\u00ac\u00ae-\u00ff"
IDEMPOTENCY_KEY_PATTERN = f"^[{_VISIBLE}](?:[ {_VISIBLE}]{{0,{IDEMPOTENCY_KEY_MAX - 2}}}[{_VISIBLE}])?$"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Problems may carry more members (e.g. `request_id`, "
    "the current quantity of a refused stock move).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/<slug>`, or `about:blank`."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422: one entry per invalid field.",
            "items": {"$ref": "#/components/schemas/ProblemError"},
        },
    },
    "additionalProperties": True,
}
PROBLEM_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ProblemError",
    "type": "object",
    "required": ["loc", "msg"],
    "properties": {
        "loc": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "description": 'Where: e.g. `["body", "lines", 0, "sku"]`, `["query", "status"]`.',
        },
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string", "example": "Bearer"}}},
    409: {"Retry-After": {"description": "When the same key is in flight.", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"schema": {"type": "integer"}}},
    429: {
        "Retry-After": {"description": "Seconds until the limit frees room.", "schema": {"type": "integer"}},
        **{
            f"RateLimit-{name}": {"description": what, "schema": {"type": "integer"}}
            for name, what in (
                ("Limit", "Requests a window allows this key in this route class."),
                ("Remaining", "Left in the window."),
                ("Reset", "Seconds until the window frees room."),
            )
        },
    },
}
_METHODS = ("get", "put", "post", "delete", "patch")
_Statuses = dict[int, set[str]]  # status -> the problem slugs (types) it is served with


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the document described above. FastAPI builds its document
    again when routes are added; each new one is completed once."""
    build = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = build()
        if not done or done[0] is not schema:
            done[:] = [document(app, schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


DOCS_ASSETS = "/docs-assets"
_ASSETS_PACKAGE = "fastapi_offline"  # ships swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js


def serve_docs(app: FastAPI) -> None:
    """/docs and /redoc from local assets (the app is built with docs_url=redoc_url=None)."""
    assets = Path(str(importlib.resources.files(_ASSETS_PACKAGE) / "static"))
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    title, openapi_url = app.title, app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def document(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM_SCHEMA
    components["ProblemError"] = PROBLEM_ERROR_SCHEMA
    for path, methods, dependant in _operations(app):
        item = schema["paths"].get(path, {})
        for method in methods:
            op = item.get(method.lower())
            if op is not None:
                _idempotency_key_once(op)
                _document_problems(op, served_statuses(dependant, op))
    _no_nul_strings(schema)
    add_links(schema)
    return schema


# No request string may hold a NUL (api.schemas.RequestModel, api.middleware.nul_errors), and a
# body's strings are trimmed before their length is checked (RequestModel strips whitespace):
# said as a pattern on each string that has no pattern, format or fixed values of its own. The
# API never stores or answers a NUL either, so answers carry the same patterns.
NO_NUL_PATTERN = "^[^\\u0000]*$"
_OWN_STRING_RULES = ("pattern", "format", "enum", "const")
_NOT_SCHEMAS = ("examples", "example", "default", "const", "enum")


def trimmed_pattern(min_length: int) -> str:
    """No NUL, and at least `min_length` characters once trimmed."""
    if min_length <= 0:
        return NO_NUL_PATTERN
    edge = "[^\\s\\u0000]"
    inner = f"(?:[^\\u0000]*{edge})?" if min_length == 1 else f"[^\\u0000]{{{min_length - 2},}}{edge}"
    return f"^\\s*{edge}{inner}\\s*$"


# What a free-form object (`data` of a resolve, `details`) holds: any JSON without a NUL.
JSON_VALUE = "JsonValue"
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "title": JSON_VALUE,
    "description": "Any JSON value with no NUL character in a string or a member name.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL_PATTERN},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": f"#/components/schemas/{JSON_VALUE}"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": {"$ref": f"#/components/schemas/{JSON_VALUE}"},
        },
    ],
}


def _no_nul_strings(schema: dict[str, Any]) -> None:
    components = schema.get("components", {}).get("schemas", {})
    for name, component in components.items():
        if name not in ("Problem", "ProblemError"):
            _no_nul(component, trimmed=True)
    components[JSON_VALUE] = JSON_VALUE_SCHEMA
    for item in schema.get("paths", {}).values():
        for method in _METHODS:
            for param in item.get(method, {}).get("parameters", []):
                _no_nul(param.get("schema", {}), trimmed=False)


def _no_nul(node: Any, *, trimmed: bool) -> None:
    if isinstance(node, list):
        for child in node:
            _no_nul(child, trimmed=trimmed)
    elif isinstance(node, dict):
        if node.get("type") == "string" and not any(rule in node for rule in _OWN_STRING_RULES):
            node["pattern"] = trimmed_pattern(node.get("minLength", 0)) if trimmed else NO_NUL_PATTERN
        if (
            node.get("type") == "object"
            and not node.get("properties")
            and node.get("additionalProperties") is True
        ):
            node["propertyNames"] = {"pattern": NO_NUL_PATTERN}
            node["additionalProperties"] = {"$ref": f"#/components/schemas/{JSON_VALUE}"}
        for key, child in node.items():
            if key not in _NOT_SCHEMAS:
                _no_nul(child, trimmed=trimmed)


def _operations(app: FastAPI) -> Iterator[tuple[str, set[str], Dependant]]:
    """Each documented route's path, methods and dependency tree (as FastAPI's document walks
    them, included routers too)."""
    for context in routing.iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context.path_format or "", context.methods or set(), context.dependant


def served_statuses(dependant: Dependant, op: dict[str, Any]) -> _Statuses:
    """The problem statuses `route` can answer with, each with the problem types it uses."""
    found: _Statuses = {}
    for status, slug in _declared(op):
        found.setdefault(status, set()).add(slug)
    for call in dependency_calls(dependant):
        for status, slugs in _raised(call).items():
            found.setdefault(status, set()).update(slugs)
    return found


def _declared(op: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """What the route's declaration alone says it can answer (guard's record, its parameters)."""
    roles = op.get("x-roles", [])
    if roles != [PUBLIC]:
        yield 401, "unauthorized"
        yield 503, "database-unavailable"
        yield 429, "rate-limited"  # api.rate_limits: per key, or per client IP without one
        if set(roles) != set(ALL_ROLES):
            yield 403, "forbidden"
    if op.get("x-idempotency"):
        yield 400, "bad-idempotency-key"
        yield 409, "idempotency-key-in-flight"
        yield 422, "idempotency-key-reused"
    if "requestBody" in op:
        yield 413, "body-too-large"
    if "requestBody" in op or op.get("parameters"):
        yield 422, "validation-error"
    if any(p["in"] == "path" for p in op.get("parameters", [])):
        yield 404, "not-found"


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every callable FastAPI calls for a route: the endpoint, then its dependencies, depth first."""
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from dependency_calls(sub)


def _document_problems(op: dict[str, Any], statuses: _Statuses) -> None:
    responses = op.setdefault("responses", {})
    for status in sorted(statuses):
        declared = responses.get(str(status), {})
        phrase = HTTPStatus(status).phrase
        own = declared.get("description")
        types_ = ", ".join(f"`{s}`" for s in sorted(statuses[status]) if s)
        description = own if own and own not in ("Validation Error", phrase) else phrase
        if types_:
            description += f" (problem types: {types_})"
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[str(status)] = response
    op["responses"] = dict(sorted(responses.items()))


def _idempotency_key_once(op: dict[str, Any]) -> None:
    """Drop every `Idempotency-Key` header the route or guard declared; declare it once."""
    params = [
        p
        for p in op.get("parameters", [])
        if not (p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key")
    ]
    policy = op.get("x-idempotency")
    if policy:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": policy == "required",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": IDEMPOTENCY_KEY_MAX,
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                },
                "description": "One unique string per business action (1-255 printable characters). "
                "Same key + same body replays the first response; a different body → 422; while the "
                "first is in flight → 409.",
            }
        )
    if params:
        op["parameters"] = params
    else:
        op.pop("parameters", None)


@cache
def _raised(fn: Callable[..., Any]) -> _Statuses:
    """The problems `fn` raises or builds, and those of the api functions it calls, by reading
    their source. Only plain functions of the api package are read; a cycle reads nothing twice."""
    found: _Statuses = {}
    _walk(fn, found, set())
    return found


def _walk(fn: Any, found: _Statuses, seen: set[Any]) -> None:
    fn = inspect.unwrap(fn)
    if inspect.isclass(fn):  # a class the code builds (PageParams, by api.deps.built_in_loop)
        fn = fn.__init__
    if fn in seen or not inspect.isfunction(fn) or not fn.__module__.startswith("api."):
        return
    seen.add(fn)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):  # no source (a frozen build): document the rules only
        return
    # Names the code calls resolve in its module, or in its closure (api.deps.built_in_loop).
    scope = {**fn.__globals__, **inspect.getclosurevars(fn).nonlocals}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "STATUS_OF":
            if scope.get("STATUS_OF") is STATUS_OF:  # a domain refusal: the refusal's slug
                for status in STATUS_OF.values():
                    found.setdefault(status, set()).add("")
        elif isinstance(node, ast.Call):
            _visit_call(node, scope, found, seen)


def _visit_call(node: ast.Call, scope: dict[str, Any], found: _Statuses, seen: set[Any]) -> None:
    target = _resolve(node.func, scope)
    if target is Problem:
        status = node.args[0] if node.args else None
        if isinstance(status, ast.Constant) and isinstance(status.value, int):
            found.setdefault(status.value, set()).add(_slug(node))
    elif target is not None:
        _walk(target, found, seen)


def _resolve(func: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(func, ast.Name):
        return scope.get(func.id)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        module = scope.get(func.value.id)
        if isinstance(module, types.ModuleType):
            return getattr(module, func.attr, None)
    return None


def _slug(call: ast.Call) -> str:
    for kw in call.keywords:
        if kw.arg == "slug" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    return ""
