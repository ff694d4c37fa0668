"""The KPI report's return, inventory and purchasing KPIs (and refunds in the margin) on the
scripted scenario of tests/kpi_scenario.py played in full (`orders`, then `further`: returns,
cycle counts, purchase orders, through the real worker and API), against figures computed by
hand; the order KPIs and the rest are tests/test_kpis.py."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.settings import Settings
from tests import kpi_scenario as scenario
from tests.kpi_scenario import day
from tests.test_kpis import Headers, _figures, _report, _window


@pytest.fixture
async def reader(
    api: httpx.AsyncClient,
    engine: AsyncEngine,
    worker: Worker,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    make_key: Callable[..., str],
) -> Headers:
    """The scenario, then its returns, cycle counts and purchase orders (tests/kpi_scenario.py);
    a readonly key's header."""
    await scenario.orders(engine, temporal_env.client, settings)
    made = {
        "web": make_key("channel", channel="web"),
        "marketplace": make_key("channel", channel="marketplace"),
        "warehouse": make_key("warehouse"),
        "admin": make_key("admin"),
    }
    keys = {name: {"Authorization": f"Bearer {key}"} for name, key in made.items()}
    await scenario.further(api, engine, temporal_env.client, settings, keys)
    return {"Authorization": f"Bearer {make_key('readonly')}"}


async def test_returns_and_refunds(api: httpx.AsyncClient, reader: Headers) -> None:
    kpis = (await _report(api, reader, **_window()))["kpis"]
    # Returned (R3 cancelled: not counted): R1 TEE web, R2 TEE marketplace = 2 units. Shipped:
    # A 2 + B 2 + C 1 + E 1 = 6 (TEE 5, MUG 1; web 5, marketplace 1).
    assert _figures(kpis["return_rate"]) == {
        "value": round(2 / 6, 4),  # 0.3333
        "by_sku": {"MUG": 0.0, "TEE": 0.4},  # 0 / 1, 2 / 5
        "by_channel": {"marketplace": 1.0, "web": 0.2},  # 1 / 1, 1 / 5
        "by_reason": {"defective": round(1 / 6, 4), "wrong_size": round(1 / 6, 4)},  # of all 6 shipped
        "counts": {"returned": 2, "shipped": 6},
    }
    # Received → settled: R1 day 8 → day 8 + 2 h = 7,200 s; R2 day 7.5 → 9.5 = 172,800 s.
    # p50 between the two: 90,000; p95 at 0.95 of the way: 7,200 + 0.95 × 165,600 = 164,520.
    assert _figures(kpis["time_to_refund"]) == {
        "value": 90_000.0,
        "p50": 90_000.0,
        "p95": 164_520.0,
        "counts": {"n": 2},
    }
    # R2 was for a defect: E is no longer perfect; A (wrong size, inspected new) still is.
    assert kpis["perfect_order_rate"]["counts"] == {"orders": 5, "perfect": 2}
    web = (await _report(api, reader, **_window(channel="web")))["kpis"]
    assert (web["return_rate"]["value"], web["return_rate"]["by_sku"]) == (0.2, {"MUG": 0.0, "TEE": 0.25})
    assert web["time_to_refund"]["value"] == 7200.0  # R1 alone
    late = (await _report(api, reader, **{"from": day(8.5).isoformat(), "to": day(10).isoformat()}))["kpis"]
    assert (late["time_to_refund"]["value"], late["time_to_refund"]["counts"]) == (172_800.0, {"n": 1})
    # No return created nor unit shipped from day 8.5: a rate of nothing over nothing.
    assert (late["return_rate"]["value"], late["return_rate"]["counts"]) == (
        None,
        {"returned": 0, "shipped": 0},
    )


async def test_refunds_in_the_margin(api: httpx.AsyncClient, reader: Headers) -> None:
    """On top of the orders' margin (tests/test_kpis.py, test_margin_by_channel_from_the_ledger): each returned unit
    received takes its cost (1,000) back out of COGS, and each settlement debits sales returns
    with the merchandise credited (2,000; no tax): R1's refund at web, R2's store credit at
    marketplace."""
    rows = (await _report(api, reader, **_window()))["kpis"]["margin_by_channel"]["value"]
    assert [
        (r["channel"], r["revenue"], r["cogs"], r["refunds"], r["margin"], r["margin_rate"]) for r in rows
    ] == [
        ("marketplace", 2500, 1000 - 1000, 2000, 2500 - 0 - 2000, 0.2),
        ("web", 29_500, 5000 - 1000, 2000, 29_500 - 4000 - 2000, round(23_500 / 29_500, 4)),
    ]


async def test_inventory_accuracy_from_cycle_counts(api: httpx.AsyncClient, reader: Headers) -> None:
    # Lines: K1 TEE (20 = 20) and MUG (0 = 0) exact; K2 TEE 4 of 5 within tolerance; K3 TEE 15
    # of 20 over it. Exact 2 of 4, within tolerance 3 of 4.
    kpis = (await _report(api, reader, **_window()))["kpis"]
    assert _figures(kpis["inventory_accuracy"]) == {
        "value": 0.5,
        "within_tolerance": 0.75,
        "counts": {"lines": 4, "exact": 2, "within_tolerance": 3},
    }
    web = (await _report(api, reader, **_window(channel="web")))["kpis"]
    assert web["inventory_accuracy"]["value"] == 0.5  # not by channel


async def test_supplier_otif_and_dock_to_stock(api: httpx.AsyncClient, reader: Headers) -> None:
    kpis = (await _report(api, reader, **_window()))["kpis"]
    # In full on time: PA, PD, PE; PB late, PC short and past due. ACME 3 of 4, SLOWCO 0 of 1.
    assert _figures(kpis["supplier_otif"]) == {
        "value": 0.6,
        "by_supplier": {"ACME": 0.75, "SLOWCO": 0.0},
        "counts": {"lines_judged": 5, "on_time_in_full": 3},
    }
    # Stocked: PA 3,600, PC 7,200, PB 10,800, PD 21,600 (to its QC pass); PE waits in quarantine.
    # p50 between the middle two: 9,000; p95 at 0.95 × 3 = 2.85: 10,800 + 0.85 × 10,800 = 19,980.
    assert _figures(kpis["dock_to_stock"]) == {
        "value": 9000.0,
        "p50": 9000.0,
        "p95": 19_980.0,
        "counts": {"n": 4},
        "waiting": 1,
    }
    before = (await _report(api, reader, **{"from": day(-1).isoformat(), "to": day(5).isoformat()}))["kpis"]
    assert (before["supplier_otif"]["value"], before["dock_to_stock"]["value"]) == (None, None)  # sent day 6
