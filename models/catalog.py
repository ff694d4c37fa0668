"""Master data: SKUs (and kit components), locations, channels with their policies, suppliers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, String
from sqlmodel import Field, SQLModel

from models.base import created_at_field

SKU_KINDS = ("simple", "kit")
TRACKING = ("none", "lot", "serial")
LOCATION_TYPES = ("dc", "store", "3pl", "dropship", "virtual")
CHANNEL_TYPES = ("web", "marketplace", "b2b", "pos", "edi")
SOURCING_RULES = ("nearest", "cheapest", "priority")
# Every stock change is a move between buckets; these locations stand for the outside world.
VIRTUAL_LOCATIONS = ("supplier", "customer", "adjustment", "scrap")


def _fk(target: str, *, primary_key: bool = False, nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(String(64), ForeignKey(target), primary_key=primary_key, nullable=nullable)


class Sku(SQLModel, table=True):
    __tablename__ = "sku"
    __table_args__ = (
        CheckConstraint(f"kind IN {SKU_KINDS!r}", name="ck_sku_kind"),
        CheckConstraint(f"tracking IN {TRACKING!r}", name="ck_sku_tracking"),
        CheckConstraint("unit_cost >= 0 AND price >= 0 AND returnable_days >= 0", name="ck_sku_amounts"),
    )
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(default="simple", max_length=10)
    unit_cost: int = 0
    price: int = 0
    currency: str = Field(default="USD", max_length=3)
    tracking: str = Field(default="none", max_length=10)
    returnable_days: int = 30
    release_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    category: str | None = Field(default=None, max_length=64)  # for replenishment's seasonality factors
    created_at: datetime = created_at_field()


class SkuComponent(SQLModel, table=True):
    __tablename__ = "sku_component"
    __table_args__ = (CheckConstraint("qty > 0", name="ck_sku_component_qty"),)
    kit_sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    component_sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    qty: int


class Location(SQLModel, table=True):
    __tablename__ = "location"
    __table_args__ = (
        CheckConstraint(f"type IN {LOCATION_TYPES!r}", name="ck_location_type"),
        CheckConstraint("ship_cost >= 0", name="ck_location_ship_cost"),
        CheckConstraint("lat IS NULL OR (lat BETWEEN -90 AND 90)", name="ck_location_lat"),
        CheckConstraint("lon IS NULL OR (lon BETWEEN -180 AND 180)", name="ck_location_lon"),
    )
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    type: str = Field(max_length=10)
    lat: float | None = None
    lon: float | None = None
    ship_cost: int = 0
    priority: int = 100
    can_ship: bool = True
    # A `dropship` location is a supplier's warehouse: the SKUs that supplier sells us
    # (supplier_item) ship from it straight to the customer.
    supplier: str | None = Field(default=None, sa_column=_fk("supplier.code", nullable=True))
    created_at: datetime = created_at_field()


class Channel(SQLModel, table=True):
    __tablename__ = "channel"
    __table_args__ = (
        CheckConstraint(f"type IN {CHANNEL_TYPES!r}", name="ck_channel_type"),
        CheckConstraint(f"sourcing_rule IN {SOURCING_RULES!r}", name="ck_channel_sourcing_rule"),
    )
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    type: str = Field(max_length=12)
    sourcing_rule: str = Field(default="nearest", max_length=10)
    created_at: datetime = created_at_field()


class ChannelLocation(SQLModel, table=True):
    """Which locations may fulfil a channel's orders."""

    __tablename__ = "channel_location"
    channel: str = Field(sa_column=_fk("channel.code", primary_key=True))
    location: str = Field(sa_column=_fk("location.code", primary_key=True))


class ChannelPolicy(SQLModel, table=True):
    """Units of a SKU held back from a channel (safety stock)."""

    __tablename__ = "channel_policy"
    __table_args__ = (CheckConstraint("safety_stock >= 0", name="ck_channel_policy_safety"),)
    channel: str = Field(sa_column=_fk("channel.code", primary_key=True))
    sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    safety_stock: int = 0


class ChannelRingfence(SQLModel, table=True):
    """Units of a SKU at a location that only this channel may take."""

    __tablename__ = "channel_ringfence"
    __table_args__ = (CheckConstraint("qty >= 0", name="ck_channel_ringfence_qty"),)
    channel: str = Field(sa_column=_fk("channel.code", primary_key=True))
    sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    location: str = Field(sa_column=_fk("location.code", primary_key=True))
    qty: int


class Supplier(SQLModel, table=True):
    __tablename__ = "supplier"
    __table_args__ = (CheckConstraint("lead_time_days >= 0", name="ck_supplier_lead_time"),)
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    lead_time_days: int = 7
    dropship: bool = False
    created_at: datetime = created_at_field()


class SupplierItem(SQLModel, table=True):
    __tablename__ = "supplier_item"
    __table_args__ = (
        CheckConstraint("cost >= 0 AND moq >= 1 AND order_multiple >= 1", name="ck_supplier_item_terms"),
    )
    supplier: str = Field(sa_column=_fk("supplier.code", primary_key=True))
    sku: str = Field(sa_column=_fk("sku.code", primary_key=True))
    cost: int
    moq: int = 1
    order_multiple: int = 1
    currency: str = Field(default="USD", max_length=3)
    lead_time_days: int | None = None  # None: the supplier's lead time
    inspect: bool = False  # receipts of it go to quarantine until QC
