"""The audit trail of changes the API writes itself (keys, master data, policies, publishing
targets, stock adjustments): one row per change with who, what, before → after and the
request id, in the change's own transaction (a refused change leaves none, a replay adds
none); `GET /v1/audit` (admin, filters, cursor) and the client's operation for it; the rows
cannot be changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from client import ApiError, AsyncOmniflowClient, OmniflowClient
from tests import audit
from tests.factories import receive
from tests.test_client import _OnTheLoop

Keys = dict[str, dict[str, str]]


def _rid(name: str) -> dict[str, str]:
    return {"X-Request-Id": name}


async def _do(
    api: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    return await api.request(
        method, path, headers={**headers, **_rid(f"req-{method}{path.replace('/', '.')}")}, **kw
    )


async def test_master_data_and_policies_are_recorded_with_before_and_after(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    admin = keys["admin"]
    r = await _do(
        api, "POST", "/v1/skus", admin, json={"code": "CAP", "name": "Cap", "unit_cost": 300, "price": 900}
    )
    assert r.status_code == 201
    row = await audit.one(engine, "sku", "CAP", "create")
    await audit.assert_actor(engine, row, admin, "admin")
    assert row.request_id == r.headers["x-request-id"] == "req-POST.v1.skus"
    assert (row.route, row.before, row.after["price"]) == ("POST /v1/skus", None, 900)

    item = {"cost": 250, "moq": 10, "order_multiple": 5}
    path = "/v1/suppliers/SUP-1/items/CAP"
    sup = {"code": "SUP-1", "name": "Supplier", "lead_time_days": 7, "items": []}
    assert (await _do(api, "POST", "/v1/suppliers", admin, json=sup)).status_code == 201
    assert (await _do(api, "PUT", path, admin, json=item)).status_code == 200
    assert (await _do(api, "PUT", path, admin, json={**item, "cost": 275})).status_code == 200
    puts = [r for r in await audit.rows(engine, "supplier_item", "SUP-1/CAP")]
    assert [(p.action, p.before and p.before["cost"], p.after["cost"]) for p in puts] == [
        ("put", None, 250),
        ("put", 250, 275),
    ]
    await audit.one(engine, "supplier", "SUP-1", "create")

    policy = {"safety_stock": 3, "ringfence": [{"location": "DC-EAST", "qty": 2}]}
    assert (await _do(api, "PUT", "/v1/channels/web/policies/TEE", admin, json=policy)).status_code == 200
    row = await audit.one(engine, "channel_policy", "web/TEE", "put")
    assert (row.before["safety_stock"], row.before["ringfence"]) == (0, [])
    assert (row.after["safety_stock"], row.after["ringfence"][0]["qty"]) == (3, 2)

    rp = {"safety_stock": 4, "review_days": 7}
    assert (
        await _do(api, "PUT", "/v1/replenishment/policies/TEE/DC-EAST", admin, json=rp)
    ).status_code == 200
    row = await audit.one(engine, "replenishment_policy", "TEE/DC-EAST", "put")
    assert (row.before, row.after["safety_stock"]) == (None, 4)
    factors = [{"sku": "TEE", "from": "2030-01-01", "to": "2030-01-31", "factor": "1.5"}]
    assert (await _do(api, "PUT", "/v1/replenishment/factors", admin, json=factors)).status_code == 200
    row = await audit.one(engine, "replenishment_factors", "all", "put")
    assert (row.before, len(row.after)) == ([], 1)

    loc = {"code": "DC-NORTH", "name": "North", "type": "dc", "lat": 45.0, "lon": -93.0, "ship_cost": 500}
    assert (await _do(api, "POST", "/v1/locations", admin, json=loc)).status_code == 201
    channel = {"code": "pos", "type": "pos", "locations": ["DC-NORTH"]}
    assert (await _do(api, "POST", "/v1/channels", admin, json=channel)).status_code == 201
    await audit.one(engine, "location", "DC-NORTH", "create")
    assert (await audit.one(engine, "channel", "pos", "create")).after["locations"] == ["DC-NORTH"]


async def test_publishing_target_is_recorded_without_its_secret(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "batch_ms": 50}
    first = await _do(api, "PUT", "/v1/channels/web/publishing", keys["admin"], json=body)
    assert first.status_code == 200
    again = await _do(api, "PUT", "/v1/channels/web/publishing", keys["admin"], json={**body, "batch_ms": 80})
    assert again.status_code == 200
    puts = await audit.rows(engine, "publishing_target", "web")
    assert [
        (p.before and p.before["batch_ms"], p.after["batch_ms"], p.after["secret_issued"]) for p in puts
    ] == [
        (None, 50, True),
        (50, 80, False),
    ]
    secret = first.json()["secret"]
    assert all(secret not in str(p.after) for p in puts)
    assert (await _do(api, "POST", "/v1/channels/web/publishing/resync", keys["admin"])).status_code == 202
    await audit.one(engine, "publishing_target", "web", "resync")


async def test_api_keys_created_and_revoked_are_recorded(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    made = await _do(api, "POST", "/v1/api-keys", keys["admin"], json={"role": "warehouse", "name": "dock 3"})
    assert made.status_code == 201
    key = made.json()
    row = await audit.one(engine, "api_key", key["id"], "create")
    assert row.after == {"name": "dock 3", "role": "warehouse", "channel": None, "prefix": key["key"][:12]}
    assert key["key"] not in str(row.after)
    revoked = await _do(api, "DELETE", f"/v1/api-keys/{key['id']}", keys["admin"])
    assert revoked.status_code == 204
    row = await audit.one(engine, "api_key", key["id"], "revoke")
    assert row.before == {"revoked_at": None} and row.after["revoked_at"]
    assert row.request_id == revoked.headers["x-request-id"]
    # Revoking it again is a 404 and records nothing.
    assert (await _do(api, "DELETE", f"/v1/api-keys/{key['id']}", keys["admin"])).status_code == 404
    assert len(await audit.rows(engine, "api_key", key["id"])) == 2


async def test_a_refused_or_unchanged_change_leaves_no_row(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    admin = keys["admin"]
    # Refused inside the transaction, after reads: STORE-SF does not fulfil b2b (422), no such SKU (404).
    bad_fence = {"safety_stock": 1, "ringfence": [{"location": "STORE-SF", "qty": 1}]}
    assert (await _do(api, "PUT", "/v1/channels/b2b/policies/TEE", admin, json=bad_fence)).status_code == 422
    assert (await _do(api, "PUT", "/v1/channels/web/policies/NOPE", admin, json=bad_fence)).status_code == 404
    sku = {"code": "TEE", "name": "Tee"}  # exists already, with other data: 409
    assert (await _do(api, "POST", "/v1/skus", admin, json=sku)).status_code == 409
    kit = {"code": "BOX", "name": "Box", "kind": "kit", "components": [{"sku": "NOPE", "qty": 1}]}
    assert (await _do(api, "POST", "/v1/skus", admin, json=kit)).status_code == 422
    assert (
        await _do(api, "POST", "/v1/skus", keys["warehouse"], json={"code": "W", "name": "W"})
    ).status_code == 403
    assert await audit.rows(engine) == []
    # The same create again answers 200 and changes nothing: one row, from the first.
    cap = {"code": "CAP", "name": "Cap"}
    assert (await _do(api, "POST", "/v1/skus", admin, json=cap)).status_code == 201
    assert (await _do(api, "POST", "/v1/skus", admin, json=cap)).status_code == 200
    assert len(await audit.rows(engine)) == 1


async def test_an_adjustment_is_recorded_once_and_a_refused_one_not_at_all(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    await receive(engine, "TEE", "DC-EAST", 10)
    body = {"sku": "TEE", "location": "DC-EAST", "delta": -3, "reason": "damage"}
    headers = {**keys["warehouse"], "Idempotency-Key": "adj-1", **_rid("adj-req-1")}
    first = await api.post("/v1/inventory/adjustments", json=body, headers=headers)
    assert first.status_code == 201
    replay = await api.post("/v1/inventory/adjustments", json=body, headers={**headers, **_rid("adj-req-2")})
    assert replay.headers.get("idempotent-replayed") == "true"
    row = await audit.one(engine, "stock", "TEE@DC-EAST", "adjust")
    await audit.assert_actor(engine, row, keys["warehouse"], "warehouse")
    assert row.request_id == "adj-req-1"
    sellable = [b for b in row.before["buckets"] if b["status"] == "sellable"]
    assert sellable[0]["qty"] == 10
    assert [b["qty"] for b in row.after["buckets"] if b["status"] == "sellable"] == [7]
    assert row.after["reason"] == "damage"

    too_many = {**body, "delta": -100}
    refused = await api.post(
        "/v1/inventory/adjustments", json=too_many, headers={**keys["warehouse"], "Idempotency-Key": "adj-2"}
    )
    assert refused.status_code == 409
    move = {
        "sku": "TEE",
        "location": "DC-EAST",
        "from_status": "sellable",
        "to_status": "quarantine",
        "qty": 2,
    }
    assert (await api.post("/v1/inventory/moves", json=move, headers=keys["warehouse"])).status_code == 201
    moved = await audit.one(engine, "stock", "TEE@DC-EAST", "move")
    assert {b["status"]: b["qty"] for b in moved.after["buckets"]} == {"sellable": 5, "quarantine": 2}
    assert {b["status"]: b["qty"] for b in moved.before["buckets"]} == {"sellable": 7, "quarantine": 0}
    assert len(await audit.rows(engine)) == 2


async def test_the_list_is_for_admins_with_filters_and_a_cursor(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    for code in ("A1", "A2", "A3"):
        assert (
            await _do(api, "POST", "/v1/skus", keys["admin"], json={"code": code, "name": code})
        ).status_code == 201
    await receive(engine, "TEE", "DC-EAST", 5)
    adj = {"sku": "TEE", "location": "DC-EAST", "delta": 1, "reason": "found"}
    headers = {**keys["warehouse"], "Idempotency-Key": "adj-l"}
    assert (await api.post("/v1/inventory/adjustments", json=adj, headers=headers)).status_code == 201

    async def listed(**params: Any) -> list[dict[str, Any]]:
        r = await api.get("/v1/audit", params=params, headers=keys["admin"])
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    everything = await listed()
    assert [(e["object"]["type"], e["object"]["id"]) for e in everything] == [
        ("stock", "TEE@DC-EAST"),
        ("sku", "A3"),
        ("sku", "A2"),
        ("sku", "A1"),
    ]
    first = everything[-1]
    assert set(first) == {"id", "at", "actor", "action", "object", "route", "before", "after", "request_id"}
    assert first["actor"] == {
        "key_id": await audit.key_id(engine, keys["admin"]),
        "role": "admin",
        "name": "test admin",
    }
    assert first["request_id"] == "req-POST.v1.skus"
    warehouse = await audit.key_id(engine, keys["warehouse"])
    assert [e["action"] for e in await listed(actor=warehouse)] == ["adjust"]
    assert len(await listed(object="sku")) == 3
    assert [e["object"]["id"] for e in await listed(object="sku:A2")] == ["A2"]
    assert len(await listed(action="create")) == 3
    assert await listed(**{"from": "2100-01-01T00:00:00Z"}) == []
    assert len(await listed(to="2100-01-01T00:00:00Z", **{"from": first["at"]})) == 4
    assert await listed(to=first["at"]) == []

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/v1/audit", params=params, headers=keys["admin"])).json()
        pages.append([e["id"] for e in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [[e["id"] for e in everything[:3]], [everything[3]["id"]]]

    for role in ("warehouse", "finance", "readonly", "web"):
        assert (await api.get("/v1/audit", headers=keys[role])).status_code == 403, role
    assert (await api.get("/v1/audit")).status_code == 401
    assert (await api.get("/v1/audit", params={"cursor": "bm9wZQ"}, headers=keys["admin"])).status_code == 400
    assert (
        await api.get("/v1/audit", params={"from": "yesterday"}, headers=keys["admin"])
    ).status_code == 422


async def test_the_database_refuses_to_change_or_delete_a_row(
    api: httpx.AsyncClient, keys: Keys, engine: AsyncEngine
) -> None:
    assert (
        await _do(api, "POST", "/v1/skus", keys["admin"], json={"code": "CAP", "name": "Cap"})
    ).status_code == 201
    for sql in (
        "UPDATE audit_entry SET actor_name = 'someone else'",
        "DELETE FROM audit_entry",
        "TRUNCATE audit_entry",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with engine.begin() as conn:
                await conn.execute(text(sql))
    (row,) = await audit.rows(engine)
    assert row.actor_name == "test admin"


async def test_the_client_reads_the_trail_sync_and_async(
    api: httpx.AsyncClient, keys: Keys, make_key: Callable[..., str]
) -> None:
    admin_key = make_key("admin")
    for code in ("C1", "C2", "C3"):
        assert (
            await _do(api, "POST", "/v1/skus", keys["admin"], json={"code": code, "name": code})
        ).status_code == 201
    async with AsyncOmniflowClient(http=api, api_key=admin_key) as client:
        page = await client.list_audit(object="sku", action="create", limit=2)
        assert [(e.object.type, e.object.id, e.action) for e in page.items] == [
            ("sku", "C3", "create"),
            ("sku", "C2", "create"),
        ]
        first = page.items[0]
        assert (first.actor.role, first.actor.name, first.route) == ("admin", "test admin", "POST /v1/skus")
        assert (first.before, first.after["code"], first.request_id) == (None, "C3", "req-POST.v1.skus")
        assert page.next_cursor is not None
        assert [e.object.id async for e in client.iter_audit(object="sku", limit=2)] == ["C3", "C2", "C1"]
        assert (await client.list_audit(object="sku:C2")).items[0].object.id == "C2"
        assert (await client.list_audit(start=datetime.now(UTC) + timedelta(days=1))).items == []
        with pytest.raises(ApiError) as refused:
            await client.with_options(api_key=make_key("warehouse")).list_audit()
        assert refused.value.status == 403
    transport = _OnTheLoop(api.app, asyncio.get_running_loop())  # type: ignore[attr-defined]

    def read() -> list[str]:
        with OmniflowClient("http://testserver", admin_key, transport=transport) as sync:
            return [e.object.id for e in sync.iter_audit(object="sku", action="create")]

    assert await asyncio.to_thread(read) == ["C3", "C2", "C1"]


async def test_return_reasons_are_recorded_when_they_change(api: httpx.AsyncClient, keys: Keys) -> None:
    reason = {"code": "too_small", "label": "Too small", "fee_amount": 0}
    for body, status in ((reason, 201), (reason, 200), ({**reason, "fee_amount": 300}, 200)):
        r = await _do(api, "POST", "/v1/return-reasons", keys["admin"], json=body)
        assert r.status_code == status, r.text
    page = await api.get("/v1/audit", params={"object": "return_reason:too_small"}, headers=keys["admin"])
    rows = page.json()["items"]  # newest first; the same reason again changed nothing
    assert [(e["before"] and e["before"]["fee_amount"], e["after"]["fee_amount"]) for e in rows] == [
        (0, 300),
        (None, 0),
    ]
    assert {(e["action"], e["route"], e["actor"]["role"]) for e in rows} == {
        ("put", "POST /v1/return-reasons", "admin")
    }
