"""Rate limits per key and route class (reads, writes, long-polls; per client IP without a
valid key): 429 problem+json with Retry-After past a limit, RateLimit-* headers on every
limited answer, the limits from the settings, long-polls bounded per key. The app here is
the real one with low limits set (the defaults are far above what the suite sends)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from runtime.settings import Settings

Headers = dict[str, str]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "rate_limit_reads": "3/minute",
            "rate_limit_writes": "2/minute",
            "rate_limit_long_polls": "3/minute",
            "rate_limit_long_polls_concurrent": 1,
            "rate_limit_anonymous": "2/minute",
        }
    )


@pytest.fixture(autouse=True)
async def _clear_of_a_minutes_end() -> None:
    """The sliding-window counter keeps a count per clock minute and weighs the last minute's
    by how much of it is still in the window: across a minute's end the hits of a test count
    for less than one each (seen: 2 left where 1 was asserted). Each test takes < 10 s."""
    into_the_minute = time.time() % 60
    if into_the_minute > 48:
        await asyncio.sleep(61 - into_the_minute)


def _key(make_key: Callable[..., str], role: str, channel: str | None = None) -> Headers:
    return {"Authorization": f"Bearer {make_key(role, channel=channel)}"}


def _headers(r: httpx.Response) -> tuple[int, int, int]:
    return (
        int(r.headers["ratelimit-limit"]),
        int(r.headers["ratelimit-remaining"]),
        int(r.headers["ratelimit-reset"]),
    )


def _is_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "/problems/rate-limited"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-remaining"] == "0"


async def test_reads_per_key_then_429_with_retry_after(
    api: httpx.AsyncClient, make_key: Callable[..., str]
) -> None:
    one, other = _key(make_key, "readonly"), _key(make_key, "readonly")
    for remaining in (2, 1, 0):
        r = await api.get("/v1/skus", headers=one)
        assert r.status_code == 200
        limit, left, reset = _headers(r)
        assert (limit, left) == (3, remaining) and 1 <= reset <= 60
    _is_429(await api.get("/v1/skus", headers=one))
    _is_429(await api.get("/v1/locations", headers=one))  # the class, not the route
    assert (await api.get("/v1/skus", headers=other)).status_code == 200  # per key


async def test_writes_are_a_class_of_their_own(api: httpx.AsyncClient, make_key: Callable[..., str]) -> None:
    admin = _key(make_key, "admin")
    for _ in range(3):
        assert (await api.get("/v1/skus", headers=admin)).status_code == 200
    for i in range(2):
        r = await api.post("/v1/api-keys", json={"role": "readonly", "name": f"k{i}"}, headers=admin)
        assert r.status_code == 201 and _headers(r)[:2] == (2, 1 - i)
    _is_429(await api.post("/v1/api-keys", json={"role": "readonly"}, headers=admin))
    assert (await api.get("/v1/api-keys", headers=admin)).status_code == 429  # reads: used up too


async def test_without_a_valid_key_the_client_ip_is_counted(
    api: httpx.AsyncClient, make_key: Callable[..., str]
) -> None:
    assert (await api.get("/v1/skus")).status_code == 401
    r = await api.get("/v1/skus", headers={"Authorization": "Bearer omf_guess"})
    assert r.status_code == 401 and _headers(r)[:2] == (2, 0)
    _is_429(await api.get("/v1/skus", headers={"Authorization": "Bearer omf_another_guess"}))
    assert (await api.get("/v1/skus", headers=_key(make_key, "readonly"))).status_code == 200
    assert (await api.get("/healthz")).status_code == 200  # public routes are not limited


async def test_long_polls_are_bounded_per_key(
    api: httpx.AsyncClient, keys: dict[str, Headers], make_key: Callable[..., str]
) -> None:
    web = keys["web"]
    feed = "/v1/availability/changes"
    first = asyncio.create_task(api.get(feed, params={"after": "0", "wait": 3}, headers=web))
    second: httpx.Response | None = None
    for _ in range(50):  # until the first holds its place
        await asyncio.sleep(0.05)
        second = await api.get(feed, params={"after": "0", "wait": 0.05}, headers=web)
        if second.status_code == 429:
            break
    assert second is not None
    _is_429(second)
    assert "long-polls open" in second.json()["detail"]
    other = _key(make_key, "channel", "web")
    assert (await api.get(feed, params={"after": "0", "wait": 0.05}, headers=other)).status_code == 200
    assert (await api.get(feed, params={"after": "0"}, headers=web)).status_code == 200  # wait=0 is a read
    assert (await first).status_code == 200
    r = await api.get(feed, params={"after": "0", "wait": 0.05}, headers=other)
    assert r.status_code == 200 and _headers(r)[:2] == (3, 1)  # the long-poll class counts
    await api.get(feed, params={"after": "0", "wait": 0.05}, headers=other)
    _is_429(await api.get(feed, params={"after": "0", "wait": 0.05}, headers=other))


async def test_every_guarded_route_documents_429(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if op.get("x-roles") == ["public"]:
                assert "429" not in op["responses"], f"{method} {path}"
                continue
            documented = op["responses"]["429"]
            assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
                documented["headers"]
            ), f"{method} {path}"


async def test_limits_can_be_switched_off(
    settings: Settings, temporal_client: Client, make_key: Callable[..., str]
) -> None:
    app = create_app(
        settings.model_copy(update={"rate_limits_enabled": False}),
        configure_logs=False,
        temporal_client=temporal_client,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            key = _key(make_key, "readonly")
            answers = [(await client.get("/v1/skus", headers=key)) for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert "ratelimit-limit" not in answers[-1].headers


def test_a_limit_that_is_not_one_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit_writes="as many as you like")
