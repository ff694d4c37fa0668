"""Request and response bodies of the replenishment routes (api/routes/replenishment.py)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from api.schemas import RequestModel, ResponseModel

CODE = r"^[A-Za-z0-9._-]{1,64}$"
RUN_ID = r"^[A-Za-z0-9._-]{1,48}$"  # a PO number R-{run_id}-… must fit in 64


# A factor as the API checks it (≥ 0, at most 8 digits, 3 of them decimals): a decimal string,
# or a whole number (a JSON fraction such as 0.1 is taken too, but is not exact in every client).
FACTOR_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^[0-9]{1,5}(\.[0-9]{1,3})?$"},
        {"type": "integer", "minimum": 0, "maximum": 99_999},
    ]
}


class FactorIn(RequestModel):
    # one_target below, as the schema says it: exactly one of `sku` and `category`.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        populate_by_name=True,
        json_schema_extra={
            "anyOf": [
                {"required": [named], "properties": {named: {"type": "string"}, other: {"type": "null"}}}
                for named, other in (("sku", "category"), ("category", "sku"))
            ]
        },
    )
    sku: str | None = Field(default=None, pattern=CODE, description="The SKU it applies to (or `category`).")
    category: str | None = Field(default=None, pattern=CODE, description="The category it applies to.")
    from_: date = Field(alias="from", description="First day it applies (inclusive).")
    to: date = Field(description="Last day it applies (inclusive).")
    factor: Annotated[Decimal, WithJsonSchema(FACTOR_SCHEMA)] = Field(
        ge=0, max_digits=8, decimal_places=3, description="Demand is multiplied by it."
    )

    @model_validator(mode="after")
    def one_target(self) -> FactorIn:
        if (self.sku is None) == (self.category is None):
            raise ValueError("name exactly one of `sku` and `category`")
        if self.from_ > self.to:
            raise ValueError("`from` must not be after `to`")
        return self


class FactorRead(ResponseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    sku: str | None
    category: str | None
    from_: date = Field(alias="from")
    to: date
    factor: float


class PolicyIn(RequestModel):
    safety_stock: int = Field(ge=0, le=10_000_000)
    review_days: int = Field(ge=0, le=365, description="Days an order covers beyond the reorder point.")
    supplier: str | None = Field(
        default=None, pattern=CODE, description="Preferred supplier; else the cheapest."
    )


class PolicyRead(ResponseModel):
    sku: str
    location: str
    safety_stock: int
    review_days: int
    supplier: str | None


class SuggestionRead(ResponseModel):
    sku: str
    location: str
    on_hand: int = Field(description="sellable + quarantine")
    inbound: int
    reserved: int
    position: int = Field(description="on_hand + inbound − reserved")
    demand_per_day: float
    factor: float
    lead_time_days: int | None
    safety_stock: int
    review_days: int
    reorder_point: float = Field(description="demand_per_day × lead_time_days + safety_stock")
    order_up_to: float = Field(description="reorder_point + demand_per_day × review_days")
    suggested_qty: int
    supplier: str | None
    unit_cost: int | None
    currency: str | None
    why: str


class Suggestions(ResponseModel):
    as_of: date
    demand_days: int
    items: list[SuggestionRead]


class RunIn(RequestModel):
    run_id: str = Field(pattern=RUN_ID, description="The run's business key: the same id never drafts twice.")


class RunRead(ResponseModel):
    run_id: str
    workflow_id: str
    status: str = Field(description="requested | drafted | done")
    result: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SimPolicyIn(RequestModel):
    demand_days: int | None = Field(default=None, ge=1, le=365)
    factors: list[FactorIn] | None = Field(
        default=None, max_length=10_000, description="Replaces the stored set."
    )
    safety_stock_multiplier: float | None = Field(default=None, ge=0, le=100)
    safety_stock: int | None = Field(default=None, ge=0, le=10_000_000, description="The same for every SKU.")
    review_days: int | None = Field(default=None, ge=0, le=365)
    service_level: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Safety stock = z(service level) × σ(daily demand) × √lead time.",
    )

    @model_validator(mode="after")
    def one_safety_rule(self) -> SimPolicyIn:
        rules = [self.safety_stock_multiplier, self.safety_stock, self.service_level]
        if sum(r is not None for r in rules) > 1:
            raise ValueError("give at most one of safety_stock_multiplier, safety_stock, service_level")
        return self


class SimulateIn(RequestModel):
    days: int = Field(ge=1, le=365, description="Replay the last N days of recorded demand.")
    policy: SimPolicyIn
    location: str | None = Field(default=None, pattern=CODE)


class SimResult(ResponseModel):
    stock_out_days: int = Field(description="SKU-location-days with demand not served")
    units_short: int
    average_days_of_cover: float | None = Field(description="end-of-day on hand ÷ average daily demand")
    purchase_value: int = Field(description="Σ qty × unit cost ordered, minor units")
    orders: int


class SimulateRead(ResponseModel):
    days: int
    sku_locations: int
    current: SimResult
    proposed: SimResult
