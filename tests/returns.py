"""Returns in tests: an order shipped through its workflow (the real activities), then a
return of it created over the API, and the warehouse's receipt and inspection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from runtime.settings import Settings
from tests.orders import fulfil, place_order, until

Headers = dict[str, str]


async def shipped_order(
    engine: AsyncEngine,
    client: Client,
    settings: Settings,
    external_id: str,
    lines: list[tuple[str, int, int]],
    **order: Any,
) -> str:
    """An order placed (captured) and every shipment of it picked, packed and shipped."""
    handle = await place_order(engine, client, settings, external_id, lines, payment="captured", **order)
    snap = await until(handle, lambda s: bool(s.shipments) and s.status in ("allocated", "in_fulfillment"))
    for shipment in snap.shipments:
        await fulfil(handle, shipment.id)
    await until(handle, lambda s: s.status in ("shipped", "completed"))
    return handle.id


def return_body(number: str, order_id: str, lines: list[tuple[str, int, str]], **over: Any) -> dict[str, Any]:
    return {
        "number": number,
        "order": order_id,
        "lines": [{"sku": s, "qty": q, "reason": r} for s, q, r in lines],
        "outcome": "refund",
        **over,
    }


async def create_return(api: httpx.AsyncClient, headers: Headers, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/v1/returns", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})


async def read(api: httpx.AsyncClient, headers: Headers, number: str) -> dict[str, Any]:
    r = await api.get(f"/v1/returns/{number}", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def until_return(
    api: httpx.AsyncClient,
    headers: Headers,
    number: str,
    ok: Callable[[dict[str, Any]], bool],
    timeout: float = 15.0,
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        last = await read(api, headers, number)
        if ok(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"return {number} never reached the state; last {last}")


async def act(
    api: httpx.AsyncClient, headers: Headers, number: str, action: str, body: dict[str, Any]
) -> httpx.Response:
    """A warehouse or customer step; the first may meet the workflow before it took the return."""
    for _ in range(100):
        r = await api.post(f"/v1/returns/{number}/{action}", json=body, headers=headers)
        if r.status_code != 409 or "is requested" not in r.text:
            return r
        await asyncio.sleep(0.05)
    return r


async def balances(engine: AsyncEngine, accounts: list[str]) -> dict[str, int]:
    """Account -> net debit − credit over the whole ledger."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT account, coalesce(sum(debit) - sum(credit), 0) AS net FROM journal_line"
                " WHERE account = ANY(:a) GROUP BY account"
            ),
            {"a": accounts},
        )
        return {a: 0 for a in accounts} | {r.account: int(r.net) for r in rows}


async def open_exception_of(
    api: httpx.AsyncClient, headers: Headers, number: str, kind: str
) -> dict[str, Any]:
    """The return's open exception of `kind`, once its workflow has opened it."""
    params = {"subject_type": "return", "subject_id": number, "kind": kind}
    for _ in range(300):
        items = (await api.get("/v1/exceptions", params=params, headers=headers)).json()["items"]
        if items:
            found: dict[str, Any] = items[0]
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no open {kind} for return {number}")


async def decide(
    api: httpx.AsyncClient, headers: Headers, number: str, kind: str, action: str, note: str = ""
) -> dict[str, Any]:
    """Resolve the return's open exception (retrying the moment between the row and the
    workflow's waiter, which answers 409)."""
    exc = await open_exception_of(api, headers, number, kind)
    for _ in range(100):
        r = await api.post(
            f"/v1/exceptions/{exc['id']}/resolve", json={"action": action, "note": note}, headers=headers
        )
        if r.status_code != 409:
            assert r.status_code in (200, 202), r.text
            body: dict[str, Any] = r.json()
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind} of return {number} never took the decision")


async def reserved(engine: AsyncEngine, sku: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT coalesce(sum(reserved), 0) FROM stock_balance WHERE sku = :s"), {"s": sku}
        )
        return int(found.scalar_one())


def units_held(ret: dict[str, Any]) -> bool:
    """The return's exchange units are reserved (its status reads in_transit before that step)."""
    return any(e["event"] == "units_held" for e in ret["timeline"])


def receipt(location: str, *lines: tuple[str, int]) -> dict[str, Any]:
    return {"location": location, "lines": [{"sku": s, "qty": q} for s, q in lines]}


def inspection(*lines: tuple[str, int, str, str]) -> dict[str, Any]:
    return {"lines": [{"sku": s, "qty": q, "condition": c, "disposition": d} for s, q, c, d in lines]}
