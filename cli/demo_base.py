"""What every section of the demo loader shares: one request (an error status stops the
load), how a route missing from this build is told apart from a refusal, the demo order's
body, and how long a summary waits for a workflow to reach its first wait."""

from __future__ import annotations

from typing import Any

import httpx

# How long the summary waits for a new workflow to reach its first wait (polls × pause).
SETTLE_POLLS, SETTLE_PAUSE = 100, 0.05

NYC = {
    "name": "Grace Hopper",
    "line1": "350 5th Ave",
    "city": "New York",
    "region": "NY",
    "postal_code": "10118",
    "country": "US",
    "lat": 40.748,
    "lon": -73.986,
}


def demo_order(
    ext: str,
    channel: str,
    lines: list[tuple[str, int, int]],
    *,
    pay: str = "authorized",
    ship_to: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    total = sum(q * p for _, q, p in lines) + 695 + 180
    return {
        "channel": channel,
        "external_id": ext,
        "customer": {"id": f"demo-{ext.lower()}", "email": "demo@example.com"},
        "ship_to": ship_to or NYC,
        "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines],
        "shipping_amount": 695,
        "tax_amount": 180,
        "payment": {
            "method": "card",
            "status": pay,
            "reference": f"demo-{ext}",
            "amount": total if pay != "pending" else 0,
        },
        **extra,
    }


def missing(r: httpx.Response) -> bool:
    """The endpoint is not in this build (yet): no route for the path (a bare 404, not the
    `/problems/not-found` of a route that exists) or not for the method (405)."""
    if r.status_code == 405:
        return True
    if r.status_code != 404:
        return False
    try:
        body = r.json()
    except ValueError:
        return True
    return not isinstance(body, dict) or body.get("type", "about:blank") == "about:blank"


def call(
    http: httpx.Client,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    key: str | None = None,
    *,
    optional: bool = False,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One request; an error status stops the load (unless `optional` and the endpoint is missing)."""
    r = http.request(
        method, path, json=body, params=params, headers={"Idempotency-Key": key} if key else None
    )
    if r.status_code >= 400 and not (optional and missing(r)):
        raise RuntimeError(f"demo data: {method} {path} answered {r.status_code}: {r.text[:300]}")
    return r
