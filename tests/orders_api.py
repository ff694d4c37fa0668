"""Helpers of the orders API tests: an order body, idempotency headers, create, the 422 field.

The `keys` fixture (a key a role, the standard catalog loaded) is in conftest.py."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from bench.common import NYC

Headers = dict[str, str]


def order_body(external_id: str = "A-1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web",
        "external_id": external_id,
        "customer": {"id": "C-1", "email": "ann@example.com"},
        "ship_to": {**NYC, "name": "Ann Lee"},
        "lines": [{"sku": "TEE", "qty": 2, "unit_price": 2000}],
        "shipping_amount": 500,
        "tax_amount": 0,
        "payment": {"method": "card", "status": "captured", "amount": 4500, "reference": "ch_1"},
    }
    body.update(over)
    return body


def idem(headers: Headers) -> Headers:
    return {**headers, "Idempotency-Key": uuid.uuid4().hex}


async def create(api: httpx.AsyncClient, headers: Headers, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/v1/orders", json=body, headers=idem(headers))


def loc(r: httpx.Response) -> list[Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return list(r.json()["errors"][0]["loc"])
