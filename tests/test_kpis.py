"""The KPI report (`GET /v1/reports/kpis`, domain.kpis, models.kpis): the scripted scenario of
tests/kpi_scenario.py against hand-computed figures, by channel and by window; nulls without
data; bad input; who may read it; and the definitions shown in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import AsyncOmniflowClient
from client.errors import ApiError
from domain.kpi_definitions import DEFINITIONS
from domain.publishing import Item
from models import kpis as facts
from models import publishing_store as store
from runtime.settings import Settings
from tests import kpi_scenario as scenario
from tests.kpi_scenario import HOUR, day
from tests.orders import GOOD_ADDRESS, open_exception, place_order

Headers = dict[str, str]
SHIP_BY = {"standard": 172_800, "express": 86_400}
RATES_AND_TIMES = (
    "fill_rate",
    "perfect_order_rate",
    "order_cycle_time",
    "on_time_ship_rate",
    "split_shipment_rate",
)


@pytest.fixture
def reader(make_key: Callable[..., str]) -> Headers:
    return {"Authorization": f"Bearer {make_key('readonly')}"}


@pytest.fixture
async def played(
    engine: AsyncEngine, worker: Worker, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    """The scenario, played through the worker (tests/kpi_scenario.py)."""
    await scenario.orders(engine, temporal_env.client, settings)


async def _report(api: httpx.AsyncClient, headers: Headers, **params: Any) -> dict[str, Any]:
    r = await api.get("/v1/reports/kpis", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _figures(kpi: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kpi.items() if k not in ("unit", "definition", "channel_scoped")}


def _window(**over: Any) -> dict[str, str]:
    """From before the scenario to past now (ledger postings and deliveries carry the real now)."""
    to = datetime.now(UTC) + timedelta(hours=1)
    return {"from": day(-1).isoformat(), "to": to.isoformat(), **over}


async def test_the_order_kpis_of_the_scenario(api: httpx.AsyncClient, reader: Headers, played: None) -> None:
    body = await _report(api, reader, **_window())
    kpis = body["kpis"]
    # Judged: A, B, C, D (past day 5), E. Lines 6, complete 5 (not D); units 18, shipped 6.
    assert _figures(kpis["fill_rate"]) == {
        "value": round(5 / 6, 4),
        "units": round(6 / 18, 4),
        "counts": {"orders": 5, "lines": 6, "lines_complete": 5, "units": 18, "units_shipped": 6},
    }
    assert kpis["perfect_order_rate"]["value"] == 0.6  # A, B, E; C late, D not shipped
    assert kpis["on_time_ship_rate"]["counts"] == {"orders": 5, "on_time": 3}
    assert kpis["split_shipment_rate"]["value"] == 0.25  # B of A, B, C, E
    # Cycle times 1800 (E), 3600 (A), 18000 (B), 259200 (C): p50 between the middle two,
    # p95 at 0.95 × 3 = 2.85 of the way: 18000 + 0.85 × 241200.
    assert _figures(kpis["order_cycle_time"]) == {
        "value": 10800.0,
        "p50": 10800.0,
        "p95": 18000 + 0.85 * 241_200,
        "counts": {"orders": 4},
    }
    backorders = kpis["backorders"]
    assert (backorders["value"], backorders["count"], backorders["units"]) == (1, 1, 3)
    age = (datetime.now(UTC) - day(3)).total_seconds()  # D's line, backordered since day 3
    assert (
        abs(backorders["aging"]["p50"] - age) < 60
        and backorders["aging"]["max"] == backorders["aging"]["p50"]
    )
    for name, kpi in kpis.items():
        assert (kpi["unit"], kpi["definition"]) == (DEFINITIONS[name].unit, DEFINITIONS[name].text)


async def test_by_channel_and_by_window(api: httpx.AsyncClient, reader: Headers, played: None) -> None:
    web = (await _report(api, reader, **_window(channel="web")))["kpis"]
    assert web["fill_rate"]["counts"] == {
        "orders": 4,
        "lines": 5,
        "lines_complete": 4,
        "units": 17,
        "units_shipped": 5,
    }
    assert (web["perfect_order_rate"]["value"], web["split_shipment_rate"]["value"]) == (0.5, round(1 / 3, 4))
    assert (web["order_cycle_time"]["p50"], web["order_cycle_time"]["p95"]) == (
        18000.0,
        18000 + 0.9 * 241_200,
    )
    market = (await _report(api, reader, **_window(channel="marketplace")))["kpis"]
    assert (market["fill_rate"]["value"], market["order_cycle_time"]["p50"]) == (1.0, 1800.0)
    assert market["backorders"]["value"] == 0  # an order received, nothing backordered: a figure
    days_2_3 = (await _report(api, reader, **{"from": day(1.5).isoformat(), "to": day(3.5).isoformat()}))[
        "kpis"
    ]
    assert days_2_3["fill_rate"]["counts"]["orders"] == 2  # C and D
    assert (days_2_3["on_time_ship_rate"]["value"], days_2_3["order_cycle_time"]["p50"]) == (
        0.0,
        3 * 86_400.0,
    )


async def test_facts_as_of_a_moment(engine: AsyncEngine, played: None) -> None:
    """Judged and aged as of the moment asked: on day 4, D is not yet past its ship-by time."""
    w = facts.Window(day(-1), day(10), day(4), None)
    async with engine.connect() as conn:
        orders, received = await facts.order_facts(conn, w, SHIP_BY, SHIP_BY["standard"])
        backorders = await facts.backorders(conn, w, received)
    assert (received, orders.judged, orders.lines, orders.to_ship) == (5, 4, 5, 4)
    assert (backorders.lines, backorders.units, backorders.age_max) == (1, 3, 1 * 86_400.0)
    assert orders.cycle_p50 == 10800.0 and HOUR == 3600.0


async def test_no_data_yet_is_null(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    body = await _report(api, keys["readonly"])
    kpis = body["kpis"]
    for name in RATES_AND_TIMES:
        assert kpis[name]["value"] is None, name
    assert kpis["fill_rate"]["units"] is None and kpis["order_cycle_time"]["p95"] is None
    assert kpis["backorders"]["value"] is None  # no order received: no data, not 0
    for name in ("return_rate", "time_to_refund", "inventory_accuracy", "margin_by_channel"):
        assert kpis[name]["value"] is None, name
    for name in ("supplier_otif", "dock_to_stock", "publish_lag"):
        assert kpis[name]["value"] is None, name
    assert (kpis["oversell_count"]["value"], kpis["exceptions"]["value"]) == (0, 0)  # a state: 0, not unknown
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert end - start == timedelta(days=30) and body["channel"] is None


async def test_bad_input(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    h = keys["readonly"]
    cases = [
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2000-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"channel": "nowhere"}, "channel"),
    ]
    for params, field in cases:
        r = await api.get("/v1/reports/kpis", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["loc"] == ["query", field], params


async def test_who_may_read_it(api: httpx.AsyncClient, keys: dict[str, Headers]) -> None:
    for role in ("admin", "warehouse", "finance", "readonly"):
        assert (await api.get("/v1/reports/kpis", headers=keys[role])).status_code == 200, role
    assert (await api.get("/v1/reports/kpis", headers=keys["web"])).status_code == 403
    assert (await api.get("/v1/reports/kpis")).status_code == 401


async def test_the_definitions_are_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    kpis = doc["components"]["schemas"]["Kpis"]["properties"]
    for name, definition in DEFINITIONS.items():
        if name in kpis:
            assert kpis[name]["description"] == definition.text, name
            assert kpis[name]["x-unit"] == definition.unit
    assert set(kpis) == set(DEFINITIONS)


def test_docs_quote_every_definition() -> None:
    page = (Path(__file__).parent.parent / "docs" / "kpis.md").read_text()
    for name in DEFINITIONS:
        assert f"### {name}\n\n{DEFINITIONS[name].text}\n" in page, name


async def test_oversell_is_found_and_zero_when_the_books_hold(
    api: httpx.AsyncClient, reader: Headers, played: None, engine: AsyncEngine
) -> None:
    """The scenario oversells nothing; a reservation row written past the stores (as a bug
    that bypassed them would) over DC-EAST's TEE shows, for its channel only."""
    assert (await _report(api, reader, **_window()))["kpis"]["oversell_count"]["value"] == 0
    await scenario.write(
        engine,
        "INSERT INTO reservation (key, line, ref, channel, sku, location, lot, qty, consumed, released, per_unit)"
        " SELECT 'rogue', '1', 'rogue', 'b2b', sku, location, lot, qty + 2, 0, 0, 1 FROM stock_balance"
        " WHERE sku = 'TEE' AND location = 'DC-EAST' AND status = 'sellable'",
    )
    oversold = (await _report(api, reader, **_window()))["kpis"]["oversell_count"]
    assert (oversold["value"], oversold["buckets"]) == (2, 1)
    assert (await _report(api, reader, **_window(channel="b2b")))["kpis"]["oversell_count"]["value"] == 2
    assert (await _report(api, reader, **_window(channel="web")))["kpis"]["oversell_count"]["value"] == 0


async def test_margin_by_channel_from_the_ledger(
    api: httpx.AsyncClient, reader: Headers, played: None
) -> None:
    """The ledger's revenue is what was captured: every order was placed with its payment
    captured, so web has A 2 × 2000 + 500 shipping, B 2000 + 1500 + 500, C 2000 + 500 and D
    12 × 1500 + 500 (nothing shipped yet), 29500; COGS 1000 a unit shipped: 5 at web.
    Marketplace E 2000 + 500, one unit."""
    rows = (await _report(api, reader, **_window()))["kpis"]["margin_by_channel"]["value"]
    assert rows == [
        {
            "channel": "marketplace",
            "currency": "USD",
            "revenue": 2500,
            "cogs": 1000,
            "refunds": 0,
            "margin": 1500,
            "margin_rate": 0.6,
        },
        {
            "channel": "web",
            "currency": "USD",
            "revenue": 29_500,
            "cogs": 5000,
            "refunds": 0,
            "margin": 24_500,
            "margin_rate": round(24_500 / 29_500, 4),
        },
    ]
    web = (await _report(api, reader, **_window(channel="web")))["kpis"]["margin_by_channel"]["value"]
    assert [r["channel"] for r in web] == ["web"]
    before = {"from": day(-1).isoformat(), "to": day(9).isoformat()}  # the postings carry the real now
    assert (await _report(api, reader, **before))["kpis"]["margin_by_channel"]["value"] is None


async def test_publish_lag_of_the_deliveries(
    api: httpx.AsyncClient, reader: Headers, played: None, engine: AsyncEngine
) -> None:
    """Deliveries recorded by the publisher's own store (models.publishing_store.advance, as its
    round does after a 2xx): web 100 and 300 ms, marketplace 50 ms, and a snapshot (not a change)."""
    for channel, delivery, kind, lag in (
        ("web", "d1", "delta", 100),
        ("web", "d2", "delta", 300),
        ("marketplace", "d3", "delta", 50),
        ("web", "d4", "snapshot", 9000),
    ):
        async with engine.begin() as conn:
            target = {
                "url": "http://127.0.0.1:9/",
                "enabled": True,
                "batch_ms": 0,
                "max_batch": 10,
                "rate_per_s": 10.0,
            }
            await store.put_target(conn, channel, "whsec_x", **target)
            row = await store.target(conn, channel)
            assert row is not None
            start = (int(row.cursor_txid), int(row.cursor_seq))
            moved = await store.advance(
                conn, channel, start, (start[0] + 1, 0), (delivery, kind, lag), [Item("TEE", 1, None)]
            )
            assert moved
    lag = (await _report(api, reader, **_window()))["kpis"]["publish_lag"]
    assert (lag["value"], lag["p99"], lag["counts"]) == (100.0, 100 + 0.98 * 200, {"deliveries": 3})
    assert lag["by_channel"] == {
        "marketplace": {"p50": 50.0, "p99": 50.0, "deliveries": 1},
        "web": {"p50": 200.0, "p99": 100 + 0.99 * 200, "deliveries": 2},
    }
    web = (await _report(api, reader, **_window(channel="web")))["kpis"]["publish_lag"]
    assert (web["value"], set(web["by_channel"])) == (200.0, {"web"})


async def test_the_client_reads_the_report(
    api: httpx.AsyncClient, played: None, make_key: Callable[..., str]
) -> None:
    async with AsyncOmniflowClient(http=api, api_key=make_key("finance")) as finance:
        window = (day(-1), datetime.now(UTC) + timedelta(hours=1))
        report = await finance.kpis(*window, channel="web")
        fill = report.kpi("fill_rate")
        assert (report.channel, fill.value, fill.unit, fill.channel_scoped) == ("web", 0.8, "ratio", True)
        assert fill.units == round(5 / 17, 4) and report.start == window[0]  # type: ignore[attr-defined]
        assert report.kpi("return_rate").value is None
        web = finance.with_options(api_key=make_key("channel", channel="web"))
        with pytest.raises(ApiError) as refused:
            await web.kpis()
        assert refused.value.status == 403


async def test_the_exception_queues(
    api: httpx.AsyncClient,
    reader: Headers,
    played: None,
    engine: AsyncEngine,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    """An order held for its address (the real workflow opens address_invalid), opened on day
    8 and due 4 h later: still open, so one breach; by channel only web's; opened before a
    later window, it is open in it but no breach of it."""
    bad = {**GOOD_ADDRESS, "region": "XX", "postal_code": "1000"}
    held = await place_order(engine, temporal_env.client, settings, "H", [("TEE", 1, 2000)], ship_to=bad)
    exc = await open_exception(engine, held.id, "address_invalid")
    await scenario.write(
        engine,
        "UPDATE exception SET opened_at = :o, due_at = :d WHERE id = :i",
        o=day(8),
        d=day(8) + timedelta(hours=4),
        i=exc.id,
    )
    queues = (await _report(api, reader, **_window()))["kpis"]["exceptions"]
    assert (queues["value"], queues["sla_breaches"]) == (1, 1)
    queue = queues["by_kind"]["address_invalid"]
    assert (queue["open"], queue["opened"], queue["sla_breaches"]) == (1, 1, 1)
    assert abs(queue["age"]["max"] - (datetime.now(UTC) - day(8)).total_seconds()) < 60
    assert (await _report(api, reader, **_window(channel="marketplace")))["kpis"]["exceptions"][
        "by_kind"
    ] == {}
    assert (await _report(api, reader, **_window(channel="web")))["kpis"]["exceptions"]["value"] == 1
    later = (await _report(api, reader, **_window(**{"from": day(8.5).isoformat()})))["kpis"]["exceptions"]
    assert (later["value"], later["sla_breaches"], later["by_kind"]["address_invalid"]["opened"]) == (1, 0, 0)
