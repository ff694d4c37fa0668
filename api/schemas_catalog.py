"""Request and response shapes of the master data (API.md "Master data")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from api.schemas import RequestModel, ResponseModel

CODE = r"^[A-Za-z0-9._-]{1,64}$"
VIRTUAL_CODES = ("supplier", "customer", "adjustment", "scrap")


class ComponentIn(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=1000)


class SkuCreate(RequestModel):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["simple", "kit"] = "simple"
    components: list[ComponentIn] = Field(default_factory=list, max_length=50)
    unit_cost: int = Field(default=0, ge=0)
    price: int = Field(default=0, ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    tracking: Literal["none", "lot", "serial"] = "none"
    returnable_days: int = Field(default=30, ge=0, le=3650)
    release_at: datetime | None = Field(default=None, description="Pre-order: sellable from this time.")

    @model_validator(mode="after")
    def kit_shape(self) -> SkuCreate:
        if self.kind == "kit" and not self.components:
            raise ValueError("a kit needs components")
        if self.kind == "simple" and self.components:
            raise ValueError("only kits have components")
        codes = [c.sku for c in self.components]
        if len(codes) != len(set(codes)):
            raise ValueError("each component once")
        if self.code in codes:
            raise ValueError("a kit cannot contain itself")
        return self


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
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    type: Literal["dc", "store", "3pl", "dropship"]
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    ship_cost: int = Field(default=0, ge=0)
    priority: int = Field(default=100, ge=0, le=1_000_000)
    can_ship: bool = True

    @model_validator(mode="after")
    def coordinates(self) -> LocationCreate:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        if self.code.lower() in VIRTUAL_CODES:
            raise ValueError(f"{self.code!r} is reserved for a virtual location")
        return self


class LocationRead(ResponseModel):
    code: str
    name: str
    type: str
    lat: float | None
    lon: float | None
    ship_cost: int
    priority: int
    can_ship: bool
    created_at: datetime


class ChannelCreate(RequestModel):
    code: str = Field(pattern=CODE)
    name: str | None = Field(default=None, max_length=200)
    type: Literal["web", "marketplace", "b2b", "pos", "edi"]
    locations: list[str] = Field(default_factory=list, max_length=200)
    sourcing_rule: Literal["nearest", "cheapest", "priority"] = "nearest"

    @model_validator(mode="after")
    def unique_locations(self) -> ChannelCreate:
        if len(self.locations) != len(set(self.locations)):
            raise ValueError("each location once")
        return self


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

    @model_validator(mode="after")
    def unique_locations(self) -> PolicyPut:
        locs = [r.location for r in self.ringfence]
        if len(locs) != len(set(locs)):
            raise ValueError("each location once")
        return self


class PolicyRead(ResponseModel):
    channel: str
    sku: str
    safety_stock: int
    ringfence: list[dict[str, object]]


class SupplierItemIn(RequestModel):
    sku: str = Field(pattern=CODE)
    cost: int = Field(ge=0)
    moq: int = Field(default=1, ge=1)
    order_multiple: int = Field(default=1, ge=1)


class SupplierCreate(RequestModel):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    lead_time_days: int = Field(default=7, ge=0, le=3650)
    items: list[SupplierItemIn] = Field(default_factory=list, max_length=5000)
    dropship: bool = False

    @model_validator(mode="after")
    def unique_items(self) -> SupplierCreate:
        skus = [i.sku for i in self.items]
        if len(skus) != len(set(skus)):
            raise ValueError("each SKU once")
        return self


class SupplierRead(ResponseModel):
    code: str
    name: str
    lead_time_days: int
    dropship: bool
    items: list[dict[str, object]]
    created_at: datetime
