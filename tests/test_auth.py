"""Every route in the OpenAPI document declares its roles, refuses a missing key (401),
refuses every role it does not allow (403), and an unknown key is 401."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

ROLES = ("admin", "channel", "warehouse", "approver", "finance", "readonly")


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in openapi["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_every_route_declares_roles(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    missing = [f"{m} {p}" for m, p, op in _operations(spec) if not op.get("x-roles")]
    assert missing == [], f"routes without guard(...): {missing}"
    assert len(_operations(spec)) >= 6


async def test_no_key_is_401_and_wrong_role_is_403_on_every_route(
    api: httpx.AsyncClient, make_key: Callable[..., str]
) -> None:
    spec = (await api.get("/openapi.json")).json()
    keys = {role: make_key(role, channel="web" if role == "channel" else None) for role in ROLES}
    checked = 0
    for method, path, op in _operations(spec):
        allowed = op["x-roles"]
        if allowed == ["public"]:
            continue
        url = _concrete(path)
        r = await api.request(method, url)
        assert r.status_code == 401, f"{method} {path} without a key answered {r.status_code}"
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers.get("www-authenticate") == "Bearer"
        for role in ROLES:
            if role in allowed:
                continue
            r = await api.request(method, url, headers={"Authorization": f"Bearer {keys[role]}"})
            assert r.status_code == 403, f"{method} {path} as {role} answered {r.status_code}"
            assert r.json()["status"] == 403
            checked += 1
        assert "admin" in allowed, f"{method} {path}: admin may call every guarded route"
    assert checked > 0


async def test_unknown_and_revoked_keys_are_401(admin: httpx.AsyncClient) -> None:
    created = (await admin.post("/v1/api-keys", json={"role": "readonly", "name": "to revoke"})).json()
    readonly = {"Authorization": f"Bearer {created['key']}"}
    assert (await admin.get("/v1/api-keys", headers=readonly)).status_code == 403
    assert (await admin.delete(f"/v1/api-keys/{created['id']}")).status_code == 204
    assert (await admin.get("/v1/api-keys", headers=readonly)).status_code == 401
    bogus = {"Authorization": "Bearer omf_not_a_key"}
    assert (await admin.get("/v1/api-keys", headers=bogus)).status_code == 401
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert (await admin.get("/v1/api-keys", headers=basic)).status_code == 401


async def test_api_keys_are_stored_hashed_and_shown_once(admin: httpx.AsyncClient, engine: Any) -> None:
    from sqlalchemy import text

    r = await admin.post("/v1/api-keys", json={"role": "channel", "channel": "web", "name": "web shop"})
    assert r.status_code == 201
    body = r.json()
    assert body["role"] == "channel" and body["channel"] == "web" and body["key"].startswith("omf_")
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT * FROM api_key WHERE id = :i"), {"i": body["id"]})).one()
    assert body["key"] not in str(tuple(stored))
    listed = (await admin.get("/v1/api-keys")).json()["items"]
    assert all("key" not in item for item in listed)
    assert any(item["id"] == body["id"] for item in listed)


async def test_channel_keys_must_name_a_channel(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/v1/api-keys", json={"role": "channel"})
    assert r.status_code == 422
    r = await admin.post("/v1/api-keys", json={"role": "warehouse", "channel": "web"})
    assert r.status_code == 422
    r = await admin.post("/v1/api-keys", json={"role": "superuser"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "role"]


async def test_api_keys_list_pages_with_a_cursor(admin: httpx.AsyncClient) -> None:
    for i in range(5):
        assert (
            await admin.post("/v1/api-keys", json={"role": "readonly", "name": f"k{i}"})
        ).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await admin.get("/v1/api-keys", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6  # five plus the admin key itself
    assert (await admin.get("/v1/api-keys", params={"limit": 501})).status_code == 422


async def test_a_key_revoked_elsewhere_stops_within_the_cache_time(
    admin: httpx.AsyncClient, engine: Any
) -> None:
    """Another API replica revoked the key (only the database knows): this process keeps
    its lookup for `api_key_cache_seconds`, then refuses the key."""
    import asyncio

    from sqlalchemy import text

    admin._transport.app.state.key_cache.ttl = 0.5  # type: ignore[attr-defined]
    created = (await admin.post("/v1/api-keys", json={"role": "readonly", "name": "elsewhere"})).json()
    readonly = {"Authorization": f"Bearer {created['key']}"}
    assert (await admin.get("/v1/skus", headers=readonly)).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_key SET revoked_at = now() WHERE id = :id"), {"id": created["id"]}
        )
    assert (await admin.get("/v1/skus", headers=readonly)).status_code == 200  # the lookup is still kept
    await asyncio.sleep(0.6)
    assert (await admin.get("/v1/skus", headers=readonly)).status_code == 401
