"""Response bodies of the KPI report (api/routes/reports.py). Each KPI's description in the
OpenAPI document is its definition from domain.kpis, the same text the answer carries in
`definition`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from api.schemas import ResponseModel
from domain.kpis import DEFINITIONS


class Kpi(ResponseModel):
    model_config = ConfigDict(extra="allow")
    value: Any = Field(description="The headline figure; null when there is no data yet.")
    unit: str = Field(
        description="ratio (0..1), seconds, milliseconds, count, units or minor currency units."
    )
    definition: str = Field(description="What is counted, over which window, and how.")
    by_channel: bool = Field(description="Whether `channel` narrows this KPI.")


class RateKpi(Kpi):
    value: float | None
    counts: dict[str, int] = Field(description="The numerator and denominator behind the ratio.")


class FillRate(RateKpi):
    units: float | None = Field(description="Units shipped ÷ units ordered.")


class Percentiles(ResponseModel):
    p50: float | None
    max: float | None


class DurationKpi(Kpi):
    value: float | None
    p50: float | None
    p95: float | None
    counts: dict[str, int]


class BackordersKpi(Kpi):
    value: int | None
    count: int | None = Field(description="Order lines backordered now (= value).")
    units: int = Field(description="Units backordered on them.")
    aging: Percentiles = Field(description="Seconds since each line was backordered.")


def _kpi(name: str) -> Any:
    """The KPI's field: its definition is the description, its unit `x-unit`."""
    return Field(description=DEFINITIONS[name].text, json_schema_extra={"x-unit": DEFINITIONS[name].unit})


class Kpis(ResponseModel):
    fill_rate: FillRate = _kpi("fill_rate")
    perfect_order_rate: RateKpi = _kpi("perfect_order_rate")
    order_cycle_time: DurationKpi = _kpi("order_cycle_time")
    on_time_ship_rate: RateKpi = _kpi("on_time_ship_rate")
    split_shipment_rate: RateKpi = _kpi("split_shipment_rate")
    backorders: BackordersKpi = _kpi("backorders")


class KpiReport(ResponseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: datetime = Field(alias="from", description="Start of the window (inclusive, UTC).")
    to: datetime = Field(description="End of the window (exclusive, UTC).")
    channel: str | None = Field(description="The channel the report is narrowed to (null: all).")
    as_of: datetime = Field(description="When it was computed: outcomes and ages are as of then.")
    kpis: Kpis
