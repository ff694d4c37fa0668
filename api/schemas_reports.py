"""Response bodies of the KPI report (api/routes/reports.py). Each KPI's description in the
OpenAPI document is its definition from domain.kpis, the same text the answer carries in
`definition`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from api.schemas import ResponseModel
from domain.kpi_definitions import DEFINITIONS


class Kpi(ResponseModel):
    model_config = ConfigDict(extra="allow")
    value: Any = Field(description="The headline figure; null when there is no data yet.")
    unit: str = Field(
        description="ratio (0..1), seconds, milliseconds, count, units or minor currency units."
    )
    definition: str = Field(description="What is counted, over which window, and how.")
    channel_scoped: bool = Field(description="Whether `channel` narrows this KPI.")


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


class ReturnRateKpi(RateKpi):
    by_sku: dict[str, float | None] = Field(description="Per SKU: its units returned ÷ its units shipped.")
    by_channel: dict[str, float | None] = Field(description="Per channel: returned ÷ shipped.")
    by_reason: dict[str, float | None] = Field(
        description="Per reason: its units returned ÷ all units shipped."
    )


class AccuracyKpi(RateKpi):
    within_tolerance: float | None = Field(description="Share of counted lines within the count tolerance.")


class OversellKpi(Kpi):
    value: int
    buckets: int = Field(description="Sellable buckets whose active reservations exceed what they hold.")


class ExceptionQueue(ResponseModel):
    open: int
    age: Percentiles = Field(description="Seconds since the open ones were opened.")
    opened: int = Field(description="Opened in the window.")
    sla_breaches: int


class ExceptionsKpi(Kpi):
    value: int
    sla_breaches: int
    by_kind: dict[str, ExceptionQueue]


class ChannelMargin(ResponseModel):
    channel: str | None
    currency: str
    revenue: int
    cogs: int
    refunds: int
    margin: int
    margin_rate: float | None


class MarginKpi(Kpi):
    value: list[ChannelMargin] | None


class SupplierKpi(RateKpi):
    by_supplier: dict[str, float | None]


class DockToStockKpi(DurationKpi):
    waiting: int = Field(description="Receipt lines whose units are not (yet) sellable.")


class ChannelLag(ResponseModel):
    p50: float | None
    p99: float | None
    deliveries: int


class PublishLagKpi(Kpi):
    value: float | None
    p50: float | None
    p99: float | None
    by_channel: dict[str, ChannelLag]
    counts: dict[str, int]


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
    return_rate: ReturnRateKpi = _kpi("return_rate")
    time_to_refund: DurationKpi = _kpi("time_to_refund")
    inventory_accuracy: AccuracyKpi = _kpi("inventory_accuracy")
    oversell_count: OversellKpi = _kpi("oversell_count")
    exceptions: ExceptionsKpi = _kpi("exceptions")
    margin_by_channel: MarginKpi = _kpi("margin_by_channel")
    supplier_otif: SupplierKpi = _kpi("supplier_otif")
    dock_to_stock: DockToStockKpi = _kpi("dock_to_stock")
    publish_lag: PublishLagKpi = _kpi("publish_lag")


class KpiReport(ResponseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: datetime = Field(alias="from", description="Start of the window (inclusive, UTC).")
    to: datetime = Field(description="End of the window (exclusive, UTC).")
    channel: str | None = Field(description="The channel the report is narrowed to (null: all).")
    as_of: datetime = Field(description="When it was computed: outcomes and ages are as of then.")
    kpis: Kpis
