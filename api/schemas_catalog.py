"""Request and response shapes of the master data (docs/api.md, "Master data")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from api.schemas import RequestModel, ResponseModel

CODE = r"^[A-Za-z0-9._-]{1,64}$"
# A channel code has no '-': an order's id is `order-{channel}-{external_id}` (its workflow
# id, workflows.contracts.orders.order_workflow_id) and the external id may hold '-', so the
# first '-' after `order-` must end the channel, or `web` + `a-b` and `web-a` + `b` would be
# one id. Existing ids are unchanged; only a new channel with '-' in its code is refused.
CHANNEL_CODE = r"^[A-Za-z0-9._]{1,64}$"
VIRTUAL_CODES = ("supplier", "customer", "adjustment", "scrap")
# Money, costs and pack sizes are kept in 32-bit integer columns: past this a write was a 500.
INT4_MAX = 2_147_483_647

# Cross-field rules are field validators (not model validators) so that a 422 names the
# field at fault (`loc: ["body", "components"]`), not just `["body"]`. A field validator
# sees the fields declared before it in `info.data`; a field that failed its own
# validation is absent there, and the rule then stays quiet (that field has its error).


def _once(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what} {v!r} is listed twice (each {what} once)")
        seen.add(v)


class ComponentIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=1000)


class SkuCreate(RequestModel):
    # kit_shape below, as the schema says it: a kit has components, a simple SKU none.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "if": {"required": ["kind"], "properties": {"kind": {"const": "kit"}}},
            "then": {"required": ["components"], "properties": {"components": {"minItems": 1}}},
            "else": {"properties": {"components": {"maxItems": 0}}},
        },
    )
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["simple", "kit"] = "simple"
    components: list[ComponentIn] = Field(default_factory=list, max_length=50, validate_default=True)
    unit_cost: int = Field(default=0, ge=0, le=INT4_MAX)
    price: int = Field(default=0, ge=0, le=INT4_MAX)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    tracking: Literal["none", "lot", "serial"] = "none"
    returnable_days: int = Field(default=30, ge=0, le=3650)
    release_at: datetime | None = Field(default=None, description="Pre-order: sellable from this time.")

    @field_validator("components")
    @classmethod
    def kit_shape(cls, components: list[ComponentIn], info: ValidationInfo) -> list[ComponentIn]:
        kind = info.data.get("kind")
        if kind == "kit" and not components:
            raise ValueError("a kit needs components")
        if kind == "simple" and components:
            raise ValueError("only kits have components (set kind to 'kit')")
        codes = [c.sku for c in components]
        _once(codes, "component")
        if info.data.get("code") in codes:
            raise ValueError("a kit cannot contain itself")
        return components

    @field_validator("release_at")
    @classmethod
    def utc(cls, value: datetime | None) -> datetime | None:
        """A time without an offset is taken as UTC (so a repeated create compares equal)."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class SkuRead(ResponseModel):
    code: str
    name: str
    kind: str
    components: list[dict[str, object]]
    unit_cost: int
    price: int
    currency: str
    tracking: str
    returnable_days: int
    release_at: datetime | None
    created_at: datetime


class LocationCreate(RequestModel):
    # both_coordinates below, as the schema says it: lat and lon both or neither.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "dependentSchemas": {
                name: {
                    "required": [other],
                    "properties": {other: {"type": "number"}, name: {"type": "number"}},
                }
                for name, other in (("lat", "lon"), ("lon", "lat"))
            },
            # create_location: only a dropship location names a supplier.
            "if": {"required": ["type"], "properties": {"type": {"const": "dropship"}}},
            "else": {"properties": {"supplier": {"type": "null"}}},
        },
    )
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    type: Literal["dc", "store", "3pl", "dropship"]
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180, validate_default=True)
    ship_cost: int = Field(default=0, ge=0, le=INT4_MAX)
    priority: int = Field(default=100, ge=0, le=1_000_000)
    can_ship: bool = True
    supplier: str | None = Field(
        default=None,
        pattern=CODE,
        description="For a `dropship` location: the drop-ship supplier whose items ship from it.",
    )

    @field_validator("code")
    @classmethod
    def not_virtual(cls, code: str) -> str:
        if code.lower() in VIRTUAL_CODES:
            raise ValueError(f"{code!r} is reserved for a virtual location")
        return code

    @field_validator("lon")
    @classmethod
    def both_coordinates(cls, lon: float | None, info: ValidationInfo) -> float | None:
        if "lat" not in info.data:  # lat itself is invalid
            return lon
        lat = info.data["lat"]
        if lat is not None and lon is None:
            raise ValueError("lon is required when lat is given (both or neither)")
        if lat is None and lon is not None:
            raise ValueError("lon needs lat too (both or neither)")
        return lon


class LocationRead(ResponseModel):
    code: str
    name: str
    type: str
    lat: float | None
    lon: float | None
    ship_cost: int
    priority: int
    can_ship: bool
    supplier: str | None = None
    created_at: datetime


class ChannelCreate(RequestModel):
    code: str = Field(
        pattern=CHANNEL_CODE,
        description="Letters, digits, `.` and `_` (no `-`: order ids are `order-{channel}-{external_id}`).",
    )
    name: str | None = Field(default=None, max_length=200)
    type: Literal["web", "marketplace", "b2b", "pos", "edi"]
    locations: list[str] = Field(default_factory=list, max_length=200)
    sourcing_rule: Literal["nearest", "cheapest", "priority"] = "nearest"

    @field_validator("locations")
    @classmethod
    def unique_locations(cls, locations: list[str]) -> list[str]:
        _once(locations, "location")
        return locations


class ChannelRead(ResponseModel):
    code: str
    name: str
    type: str
    locations: list[str]
    sourcing_rule: str
    created_at: datetime


class RingfenceIn(RequestModel):
    location: str = Field(pattern=CODE)
    qty: int = Field(ge=0, le=10_000_000)


class PolicyPut(RequestModel):
    safety_stock: int = Field(default=0, ge=0, le=10_000_000)
    ringfence: list[RingfenceIn] = Field(default_factory=list, max_length=200)

    @field_validator("ringfence")
    @classmethod
    def unique_locations(cls, ringfence: list[RingfenceIn]) -> list[RingfenceIn]:
        _once([r.location for r in ringfence], "location")
        return ringfence


class PolicyRead(ResponseModel):
    channel: str
    sku: str
    safety_stock: int
    ringfence: list[dict[str, object]]


class SupplierItemIn(RequestModel):
    sku: str = Field(pattern=CODE)
    cost: int = Field(ge=0, le=INT4_MAX)
    moq: int = Field(default=1, ge=1, le=INT4_MAX)
    order_multiple: int = Field(default=1, ge=1, le=INT4_MAX)


class SupplierCreate(RequestModel):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    lead_time_days: int = Field(default=7, ge=0, le=3650)
    items: list[SupplierItemIn] = Field(default_factory=list, max_length=5000)
    dropship: bool = False

    @field_validator("items")
    @classmethod
    def unique_items(cls, items: list[SupplierItemIn]) -> list[SupplierItemIn]:
        _once([i.sku for i in items], "SKU")
        return items


class SupplierRead(ResponseModel):
    code: str
    name: str
    lead_time_days: int
    dropship: bool
    items: list[dict[str, object]]
    created_at: datetime
