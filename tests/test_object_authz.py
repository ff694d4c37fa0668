"""Object-level authorization, proven by a matrix generated from the OpenAPI document: every
path × method × role × owner, against real objects of two channels (tests/authz_world.py).

Each route of the document must be classified in ROUTES below (a route that is not fails
`test_every_route_is_classified`, so a new one cannot escape the matrix):

- OWNED: the object named by the path (or, for a create, by the body) belongs to a channel.
  A channel key on its own channel's object is let through; on another channel's it gets
  404, as for an object that does not exist. Every other role the route allows is let through
  on both channels' objects.
- UNOWNED: nobody's object (master data, stock, the books, the human queues, transfers,
  counts, purchase orders, keys, the audit trail): the roles of the route's `x-roles` are let
  through, every other role is refused with 403 — a channel key included.
- PUBLIC: no key needed.

"Let through" means the answer is neither 401, 403 nor 404 (nor a 5xx): the caller reached
the object, whatever the business then said (200, 202, 409, 422). A channel key's lists
(orders, returns, channels, availability, the feed, a SKU's ATP) show its own channel only:
`test_a_channel_key_lists_its_own_channel_only`."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from runtime.embedded_pg import EmbeddedPostgres
from tests.authz_world import CHANNELS, ROLES, World, world
from tests.orders_api import order_body

OWNED, UNOWNED, PUBLIC = "owned", "unowned", "public"
Objects = dict[str, str]  # kind -> id, of one channel (OWNED) or of nobody (UNOWNED)
Body = Callable[[Objects], Any]


@dataclass(frozen=True)
class Route:
    kind: str
    params: dict[str, str] = field(default_factory=dict)  # path parameter -> the kind of object it names
    body: Body | None = None  # what a caller sends (a valid body where ownership must be reached)
    other: int = 404  # what a channel key gets for another channel's object
    absent: bool = False  # the object is not made: a 404 is the answer for roles let through


def owned(body: Body | None = None, other: int = 404, **params: str) -> Route:
    return Route(OWNED, params, body, other)


def unowned(absent: bool = False, **params: str) -> Route:
    return Route(UNOWNED, params, absent=absent)


def _new_order(o: Objects) -> dict[str, Any]:
    return order_body(f"AZ-{uuid.uuid4().hex[:8]}", channel=o["channel"])


def _new_return(o: Objects) -> dict[str, Any]:
    line = {"sku": "TEE", "qty": 1, "reason": "changed_mind"}
    return {
        "number": f"RMA-{uuid.uuid4().hex[:8]}",
        "order": o["order"],
        "lines": [line],
        "outcome": "refund",
    }


ADDRESS = order_body()["ship_to"]
PAYMENT = {"status": "captured", "amount": 6500, "reference": "ch_again", "method": "card"}

ROUTES: dict[str, Route] = {
    "GET /healthz": Route(PUBLIC),
    "GET /readyz": Route(PUBLIC),
    "GET /metrics": Route(PUBLIC),
    "POST /v1/api-keys": unowned(),
    "GET /v1/api-keys": unowned(),
    "DELETE /v1/api-keys/{key_id}": unowned(key_id="key"),
    "POST /v1/skus": unowned(),
    "GET /v1/skus": unowned(),
    "GET /v1/skus/{code}": unowned(code="sku"),
    "POST /v1/locations": unowned(),
    "GET /v1/locations": unowned(),
    "GET /v1/locations/{code}": unowned(code="location"),
    "POST /v1/channels": unowned(),
    "GET /v1/channels": unowned(),
    "GET /v1/channels/{code}": owned(code="channel"),
    "PUT /v1/channels/{code}/policies/{sku}": owned(code="channel", sku="sku"),
    "GET /v1/channels/{code}/policies/{sku}": owned(code="channel", sku="sku"),
    "PUT /v1/channels/{code}/publishing": owned(code="channel"),
    "GET /v1/channels/{code}/publishing": owned(code="channel"),
    "POST /v1/channels/{code}/publishing/resync": owned(code="channel"),
    "GET /v1/channels/{code}/publishing/status": owned(code="channel"),
    "POST /v1/suppliers": unowned(),
    "GET /v1/suppliers": unowned(),
    "GET /v1/suppliers/{code}": unowned(code="supplier"),
    "GET /v1/suppliers/{code}/scorecard": unowned(code="supplier"),
    "PUT /v1/suppliers/{code}/items/{sku}": unowned(code="supplier", sku="sku"),
    "GET /v1/suppliers/{code}/items/{sku}": unowned(code="supplier", sku="sku"),
    "POST /v1/inventory/adjustments": unowned(),
    "POST /v1/inventory/moves": unowned(),
    "GET /v1/inventory/movements": unowned(),
    "GET /v1/inventory/{sku}": unowned(sku="sku"),
    "GET /v1/availability": unowned(),
    "GET /v1/availability/changes": unowned(),
    "POST /v1/transfers": unowned(),
    "GET /v1/transfers": unowned(),
    "GET /v1/transfers/{number}": unowned(number="transfer"),
    "POST /v1/transfers/{number}/ship": unowned(number="transfer"),
    "POST /v1/transfers/{number}/receive": unowned(number="transfer"),
    "POST /v1/cycle-counts": unowned(),
    "GET /v1/cycle-counts": unowned(),
    "GET /v1/cycle-counts/accuracy": unowned(),
    "GET /v1/cycle-counts/{count_id}": unowned(count_id="count"),
    "POST /v1/cycle-counts/{count_id}/submit": unowned(count_id="count"),
    "GET /v1/exceptions": unowned(),
    "GET /v1/exceptions/{exception_id}": unowned(exception_id="exception"),
    "POST /v1/exceptions/{exception_id}/resolve": unowned(exception_id="exception"),
    "GET /v1/ledger/accounts": unowned(),
    "GET /v1/ledger/entries": unowned(),
    "GET /v1/ledger/trial-balance": unowned(),
    "GET /v1/valuation": unowned(),
    # a create names its channel in the body: another channel's is refused (403), not hidden
    "POST /v1/orders": owned(_new_order, other=403),
    "GET /v1/orders": unowned(),
    "GET /v1/orders/{order_id}": owned(order_id="order"),
    "POST /v1/orders/{order_id}/cancel": owned(lambda _: {"reason": "matrix"}, order_id="order"),
    "PATCH /v1/orders/{order_id}/ship-to": owned(lambda _: ADDRESS, order_id="order"),
    "POST /v1/orders/{order_id}/payment": owned(lambda _: PAYMENT, order_id="order"),
    "GET /v1/shipments/{shipment_id}": owned(shipment_id="shipment"),
    "GET /v1/pick-tasks": unowned(),
    "POST /v1/shipments/{shipment_id}/pick": owned(shipment_id="shipment"),
    "POST /v1/shipments/{shipment_id}/pack": owned(shipment_id="shipment"),
    "POST /v1/shipments/{shipment_id}/ship": owned(shipment_id="shipment"),
    "GET /v1/replenishment/suggestions": unowned(),
    "GET /v1/replenishment/factors": unowned(),
    "PUT /v1/replenishment/factors": unowned(),
    "PUT /v1/replenishment/policies/{sku}/{location}": unowned(sku="sku", location="location"),
    "POST /v1/replenishment/run": unowned(),
    "GET /v1/replenishment/runs/{run_id}": unowned(absent=True, run_id="run"),
    "POST /v1/replenishment/simulate": unowned(),
    "POST /v1/purchase-orders": unowned(),
    "GET /v1/purchase-orders": unowned(),
    "GET /v1/purchase-orders/{number}": unowned(number="po"),
    **{
        f"POST /v1/purchase-orders/{{number}}/{step}": unowned(number="po")
        for step in ("approve", "reject", "confirm", "receipts", "qc", "bills", "cancel")
    },
    "GET /v1/return-reasons": unowned(),
    "POST /v1/return-reasons": unowned(),
    "POST /v1/returns": owned(_new_return),
    "GET /v1/returns": unowned(),
    "GET /v1/returns/{number}": owned(number="return"),
    "GET /v1/customers/{customer_id}/store-credit": owned(customer_id="customer"),
    "POST /v1/returns/{number}/receive": owned(number="return"),
    "POST /v1/returns/{number}/inspect": owned(number="return"),
    "POST /v1/returns/{number}/cancel": owned(lambda _: {"reason": "matrix"}, number="return"),
    "GET /v1/reports/kpis": unowned(),
    "GET /v1/audit": unowned(),
    "GET /v1/me": unowned(),  # the signed-in key itself: nothing a channel owns
}


@pytest.fixture(scope="module")
async def w(pg_server: EmbeddedPostgres) -> AsyncIterator[World]:
    async with world(pg_server) as built:
        yield built


def _operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_every_route_is_classified(w: World) -> None:
    """A route of the document that the matrix does not know fails here; so does a route the
    matrix names that the document no longer has (the audit trail's once it has landed)."""
    documented = _operations((await w.api.get("/openapi.json")).json())
    unknown = sorted(set(documented) - set(ROUTES))
    assert unknown == [], f"classify these routes in ROUTES: {unknown}"
    gone = sorted(set(ROUTES) - set(documented) - {"GET /v1/audit"})
    assert gone == [], f"ROUTES names routes the API no longer has: {gone}"


@dataclass(frozen=True)
class Probe:
    """One request of the matrix: who asks, about whose object, and what it must answer."""

    role: str  # a key of World.keys
    owner: str  # "own", "other" (channel keys on OWNED routes), or the channel / "none" it names
    objects: Objects
    expect: str  # "through", "absent" (through, or 404 for an object that is not made), "403", "404"


def _probes(w: World, route: Route, roles: list[str]) -> list[Probe]:
    """Every (role, owner) the matrix asks of a route, with the expected answer."""
    probes: list[Probe] = []
    if route.kind == OWNED:
        web, market = w.owned["web"], w.owned["marketplace"]
        if "channel" in roles:
            probes.append(Probe("web", "own", web, "through"))
            probes.append(Probe("web", "other", market, str(route.other)))
        else:
            probes += [Probe("web", owner, o, "403") for owner, o in (("own", web), ("other", market))]
        for role in ROLES:
            for channel in CHANNELS:
                probes.append(Probe(role, channel, w.owned[channel], "through" if role in roles else "403"))
        return probes
    allowed = "absent" if route.absent else "through"
    for role in (*ROLES, "web"):
        ok = role in roles or (role == "web" and "channel" in roles)
        probes.append(Probe(role, "none", w.unowned, allowed if ok else "403"))
    return probes


def _url(path: str, route: Route, objects: Objects) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: objects.get(route.params[m.group(1)], "none-such"), path)


def _verdict(status: int, expect: str) -> bool:
    if status >= 500:
        return False
    if expect == "through":
        return status not in (401, 403, 404)
    if expect == "absent":
        return status not in (401, 403)
    return status == int(expect)


async def test_every_route_every_role_every_owner(w: World) -> None:
    """The matrix: ~90 routes × 7 keys × the owners each route has. Every failure is listed."""
    spec = (await w.api.get("/openapi.json")).json()
    failures: list[str] = []
    asked = 0
    # Another channel's objects first: nothing has acted on them yet, so a 404 can only be the check.
    ordered = sorted(_operations(spec).items(), key=lambda kv: kv[0].split(" ")[0] != "GET")
    for key, op in ordered:
        route = ROUTES[key]
        if route.kind == PUBLIC:
            assert op["x-roles"] == ["public"], key
            continue
        method, path = key.split(" ", 1)
        for probe in sorted(_probes(w, route, op["x-roles"]), key=lambda p: p.owner != "other"):
            body = route.body(probe.objects) if route.body else ({} if method != "GET" else None)
            headers = {**w.keys[probe.role], "Idempotency-Key": uuid.uuid4().hex}
            r = await w.api.request(method, _url(path, route, probe.objects), json=body, headers=headers)
            asked += 1
            if not _verdict(r.status_code, probe.expect):
                failures.append(
                    f"{key} as {probe.role} on {probe.owner}: {r.status_code} (want {probe.expect})"
                )
    assert failures == [], "\n".join(failures)
    assert asked > 500


def _ids(page: dict[str, Any], field_: str = "id") -> set[str]:
    return {str(item[field_]) for item in page["items"]}


async def test_a_channel_key_lists_its_own_channel_only(w: World) -> None:
    web, admin = w.keys["web"], w.keys["admin"]
    mine, theirs = w.owned["web"], w.owned["marketplace"]
    for path, kind, field_ in (
        ("/v1/orders", "order", "id"),
        ("/v1/returns", "return", "number"),
        ("/v1/channels", "channel", "code"),
    ):
        everyone = _ids((await w.api.get(path, params={"limit": 500}, headers=admin)).json(), field_)
        assert {mine[kind], theirs[kind]} <= everyone, path
        seen = (await w.api.get(path, params={"limit": 500}, headers=web)).json()
        assert mine[kind] in _ids(seen, field_) and theirs[kind] not in _ids(seen, field_), path
    orders = (await w.api.get("/v1/orders", params={"limit": 500}, headers=web)).json()["items"]
    assert {o["channel"] for o in orders} == {"web"}
    returns = (await w.api.get("/v1/returns", params={"limit": 500}, headers=web)).json()["items"]
    assert {r["channel"] for r in returns} == {"web"}
    atp = (await w.api.get("/v1/availability", headers=web)).json()["items"]
    assert atp and {i["channel"] for i in atp} == {"web"}
    assert set((await w.api.get("/v1/inventory/TEE", headers=web)).json()["available_to_promise"]) == {"web"}
    assert set((await w.api.get("/v1/inventory/TEE", headers=admin)).json()["available_to_promise"]) >= {
        "web",
        "marketplace",
    }
    feed = await w.api.get("/v1/availability/changes", params={"after": "0"}, headers=web)
    assert feed.status_code == 200 and feed.json()["channel"] == "web"
    # naming another channel is as naming one that does not exist
    for path in ("/v1/orders", "/v1/availability", "/v1/availability/changes"):
        other = await w.api.get(path, params={"channel": "marketplace"}, headers=web)
        none = await w.api.get(path, params={"channel": "no-such-channel"}, headers=web)
        assert other.status_code == none.status_code == 404, path
        assert other.json()["detail"] == "channel marketplace was not found"
