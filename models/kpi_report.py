"""The whole KPI report of one window: the facts of every area (models.kpis, kpis_ops,
kpis_supply), fourteen statements on one connection, each turned into its KPI by domain.kpis."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from domain import kpis as rules
from models import kpis_ops as ops
from models import kpis_supply as supply
from models.kpis import Window, backorders, order_facts


async def figures(
    conn: AsyncConnection, w: Window, ship_by: Mapping[str, int]
) -> dict[str, dict[str, object]]:
    """KPI name -> its figures (without unit and definition)."""
    orders, received = await order_facts(conn, w, ship_by, ship_by.get("standard", max(ship_by.values())))
    returned, shipped = await ops.return_units(conn, w)
    stocked, waiting = await supply.dock_to_stock(conn, w)
    suppliers = await supply.suppliers(conn, w)
    return {
        **rules.order_kpis(orders),
        "backorders": rules.backorder_kpi(await backorders(conn, w, received)),
        "return_rate": rules.return_rate_kpi(returned, shipped, await ops.returns_in_use(conn)),
        "time_to_refund": rules.duration_kpi(await ops.refund_times(conn, w)),
        "inventory_accuracy": rules.accuracy_kpi(await ops.counted_lines(conn, w)),
        "oversell_count": rules.oversell_kpi(await ops.oversold(conn, w)),
        "exceptions": rules.exceptions_kpi(await ops.exception_kinds(conn, w)),
        "margin_by_channel": rules.margin_kpi(await supply.margins(conn, w)),
        "supplier_otif": rules.supplier_kpi({code: f.lines for code, f in suppliers.items()}, w.as_of),
        "dock_to_stock": rules.duration_kpi(stocked, waiting=waiting),
        "publish_lag": rules.publish_lag_kpi(await supply.publish_lags(conn, w)),
    }
