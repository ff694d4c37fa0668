"""No route runs code in FastAPI's thread pool. FastAPI runs a plain `def` endpoint or
dependency, and a class given as a dependency, in a worker thread: a hand-off each way per
request, which the order benchmark measured at 7 % of the API's CPU (docs/performance.md).
Built from the app itself, no database: the test walks every route's dependency tree."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import routing

from api.app import create_app
from api.deps import built_in_loop
from api.openapi import dependency_calls
from api.pagination import PageParams
from runtime.settings import Settings


def _in_loop(call: Callable[..., Any]) -> bool:
    if inspect.isclass(call):
        return False
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    dunder = getattr(call, "__call__", None)  # noqa: B004 -- an instance with an async __call__
    return inspect.iscoroutinefunction(dunder) or inspect.isasyncgenfunction(dunder)


def test_every_endpoint_and_dependency_runs_in_the_event_loop() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", temporal_address="127.0.0.1:1"
    )
    app = create_app(settings, configure_logs=False)
    threaded: set[str] = set()
    routes = 0
    for context in routing.iter_route_contexts(app.routes):
        if not isinstance(context.original_route, routing.APIRoute):
            continue
        routes += 1
        for call in dependency_calls(context.dependant):
            if not _in_loop(call):
                threaded.add(f"{context.path_format}: {getattr(call, '__qualname__', call)!r}")
    assert routes > 50, "the walk found the app's routes"
    assert not threaded, sorted(threaded)


def test_a_class_built_in_the_loop_keeps_its_parameters() -> None:
    """What FastAPI reads off the dependency: the class's own parameters, annotations resolved
    in the class's module (api.pagination writes them as strings)."""
    build = built_in_loop(PageParams)
    assert inspect.iscoroutinefunction(build)
    params = inspect.signature(build).parameters
    assert list(params) == ["limit", "cursor"]
    assert params["limit"].default == 50
    assert not isinstance(params["limit"].annotation, str)
