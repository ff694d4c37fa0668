"""A world for the object-level authorization matrix, built once per test module: its own
database (a clone of the migrated template), a time-skipping Temporal server, the real worker
and the app, and for each of two channels (web, marketplace) an order shipped in full, its
shipment, a return of it, its customer and a publishing target; besides them objects no
channel owns (a transfer, a cycle count, a purchase order, an exception, a supplier item).
Everything is made through the API or the workflows, as a channel and a warehouse would."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from cli.temporal_dev import ensure_search_attributes
from runtime.admin_key import install_key
from runtime.db import make_async_engine, make_sync_engine
from runtime.embedded_pg import EmbeddedPostgres
from runtime.settings import Settings
from tests.conftest import TEMPLATE_DB, _venv_bin
from tests.factories import receive, standard_catalog
from tests.orders import place_order
from tests.orders_api import order_body
from tests.purchase_orders import add_item, add_supplier
from worker import build_worker

Headers = dict[str, str]
ROLES = ("admin", "warehouse", "approver", "finance", "readonly")
CHANNELS = ("web", "marketplace")
LINES = [{"sku": "TEE", "qty": 3, "unit_price": 2000}]
TOTAL = 3 * 2000 + 500
_worlds = itertools.count()


@dataclass
class World:
    api: httpx.AsyncClient
    engine: AsyncEngine
    keys: dict[str, Headers]  # a role's Authorization header; "web" and "marketplace": channel keys
    owned: dict[str, dict[str, str]] = field(default_factory=dict)  # channel -> its objects by kind
    unowned: dict[str, str] = field(default_factory=dict)  # objects no channel owns, by kind


def idem(headers: Headers) -> Headers:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


def _ok(r: httpx.Response, *codes: int) -> dict[str, Any]:
    assert r.status_code in codes, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    body: dict[str, Any] = r.json() if r.content else {}
    return body


async def until(w: World, headers: Headers, url: str, ok: Callable[[Any], bool]) -> Any:
    last: Any = None
    for _ in range(600):
        last = (await w.api.get(url, headers=headers)).json()
        if ok(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never got there: {last}")


async def _ship(w: World, channel: str, order_id: str) -> str:
    url = f"/v1/orders/{order_id}"
    order = await until(w, w.keys[channel], url, lambda o: o["status"] == "allocated" and o["shipments"])
    wh = w.keys["warehouse"]
    shipment = str(order["shipments"][0]["id"])
    picked = {"lines": [{"sku": "TEE", "qty": 3}]}
    _ok(await w.api.post(f"/v1/shipments/{shipment}/pick", json=picked, headers=wh), 200)
    package = {"weight_g": 600, "length_mm": 300, "width_mm": 200, "height_mm": 100, **picked}
    _ok(await w.api.post(f"/v1/shipments/{shipment}/pack", json={"packages": [package]}, headers=wh), 200)
    ship = {"carrier": "UPS", "service": "ground", "tracking": f"1Z{channel}"}
    _ok(await w.api.post(f"/v1/shipments/{shipment}/ship", json=ship, headers=wh), 200)
    await until(w, w.keys[channel], url, lambda o: o["status"] == "completed")
    return shipment


async def _channel_objects(w: World, channel: str) -> dict[str, str]:
    """An order of `channel` shipped in full, its shipment, a return of one unit of it, its
    customer, and the channel's publishing target (switched off: nothing is sent)."""
    customer = f"cust-{channel}"
    payment = {"method": "card", "status": "captured", "amount": TOTAL, "reference": f"ch_{channel}"}
    body = order_body(
        f"AZ-{channel}",
        channel=channel,
        lines=LINES,
        payment=payment,
        customer={"id": customer, "email": "c@example.com"},
    )
    order = _ok(await w.api.post("/v1/orders", json=body, headers=idem(w.keys[channel])), 202)
    shipment = await _ship(w, channel, order["id"])
    rma = {
        "number": f"RMA-{channel}",
        "order": order["id"],
        "outcome": "refund",
        "lines": [{"sku": "TEE", "qty": 1, "reason": "changed_mind"}],
    }
    _ok(await w.api.post("/v1/returns", json=rma, headers=idem(w.keys[channel])), 202)
    target = {"url": f"http://127.0.0.1:9/{channel}", "enabled": False}
    _ok(await w.api.put(f"/v1/channels/{channel}/publishing", json=target, headers=w.keys["admin"]), 200)
    return {
        "order": order["id"],
        "shipment": shipment,
        "return": rma["number"],
        "customer": customer,
        "channel": channel,
        "sku": "TEE",
    }


async def _unowned_objects(w: World, settings: Settings, env: WorkflowEnvironment) -> dict[str, str]:
    """A transfer, a cycle count, a purchase order, an exception (an order waiting for its
    payment), a supplier item and a key to revoke."""
    admin = w.keys["admin"]
    transfer = {"number": "T-AZ", "from": "DC-EAST", "to": "DC-WEST", "lines": [{"sku": "MUG", "qty": 1}]}
    _ok(await w.api.post("/v1/transfers", json=transfer, headers=idem(admin)), 201, 202)
    count = {"id": "CC-AZ", "location": "DC-WEST", "skus": ["MUG"]}
    _ok(await w.api.post("/v1/cycle-counts", json=count, headers=idem(admin)), 201, 202)
    await add_supplier(w.engine)
    await add_item(w.engine, "MUG", 300)
    line = {"sku": "MUG", "qty": 5, "unit_cost": 300}
    po = {"number": "PO-AZ", "supplier": "ACME", "location": "DC-EAST", "lines": [line]}
    _ok(await w.api.post("/v1/purchase-orders", json=po, headers=idem(admin)), 201, 202)
    handle = await place_order(
        w.engine, env.client, settings, "AZ-PENDING", [("MUG", 1, 900)], payment="pending"
    )
    page = await until(
        w,
        admin,
        "/v1/exceptions?kind=payment_pending",
        lambda p: any(e["subject"]["id"] == handle.id for e in p["items"]),
    )
    spare = _ok(
        await w.api.post("/v1/api-keys", json={"role": "readonly", "name": "spare"}, headers=admin), 201
    )
    return {
        "transfer": "T-AZ",
        "count": "CC-AZ",
        "po": "PO-AZ",
        "exception": page["items"][0]["id"],
        "key": spare["id"],
        "sku": "MUG",
        "location": "DC-EAST",
        "supplier": "ACME",
    }


@asynccontextmanager
async def world(pg_server: EmbeddedPostgres) -> AsyncIterator[World]:
    """The world, torn down after: the database dropped, the servers stopped."""
    name = f"authz_{os.getpid()}_{next(_worlds)}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    url = pg_server.admin_url(name)
    settings = Settings(
        database_url=url,
        temporal_address="time-skipping-test-server",
        task_queue=f"tq-{name}",
        log_format="console",
        db_pool_size=5,
    )
    async with AsyncExitStack() as stack:
        stack.callback(_drop, pg_server, name)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=_venv_bin("temporal-test-server")
        )
        stack.push_async_callback(env.shutdown)
        await ensure_search_attributes(env.client, "default")
        engine = make_async_engine(url, pool_size=5)
        stack.push_async_callback(engine.dispose)
        await stack.enter_async_context(build_worker(env.client, engine, settings))
        app = create_app(settings, configure_logs=False, temporal_client=env.client)
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        api = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://testserver")
        )
        w = World(api=api, engine=engine, keys=_keys(url))
        await standard_catalog(engine)
        for sku, qty in (("TEE", 20), ("MUG", 20)):
            await receive(engine, sku, "DC-EAST", qty)
        for channel in CHANNELS:
            w.owned[channel] = await _channel_objects(w, channel)
        w.unowned = await _unowned_objects(w, settings, env)
        yield w


def _keys(url: str) -> dict[str, Headers]:
    sync = make_sync_engine(url, pool_size=1)
    made = {role: f"omf_az_{role}_{uuid.uuid4().hex}" for role in (*ROLES, *CHANNELS)}
    for role, secret in made.items():
        channel = role if role in CHANNELS else None
        install_key(sync, secret, role="channel" if channel else role, channel=channel, name=f"matrix {role}")
    sync.dispose()
    return {role: {"Authorization": f"Bearer {secret}"} for role, secret in made.items()}


def _drop(pg_server: EmbeddedPostgres, name: str) -> None:
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
