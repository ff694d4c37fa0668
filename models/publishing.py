"""Channel publishing: each channel's webhook target and feed cursor, the ATP it last
published per SKU (the receiver's state, as far as we know it), and the deliveries made
(with their lag, for the status and the KPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Float, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from models.base import created_at_field


def _ts() -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=True)


class ChannelPublishing(SQLModel, table=True):
    __tablename__ = "channel_publishing"
    __table_args__ = (
        CheckConstraint(
            "batch_ms >= 0 AND max_batch > 0 AND rate_per_s > 0", name="ck_channel_publishing_limits"
        ),
    )
    channel: str = Field(sa_column=Column(String(64), ForeignKey("channel.code"), primary_key=True))
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=100)
    enabled: bool = True
    batch_ms: int = 200
    max_batch: int = 500
    rate_per_s: float = Field(default=10.0, sa_column=Column(Float, nullable=False))
    cursor_txid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cursor_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    paused: bool = False
    snapshot_due: bool = True  # the next delivery is a full snapshot (switched on, back after an outage)
    failing_since: datetime | None = _ts()
    last_delivery_at: datetime | None = _ts()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class ChannelPublished(SQLModel, table=True):
    __tablename__ = "channel_published"
    channel: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=64)
    available: int
    delivery_id: str = Field(max_length=200)
    at: datetime = created_at_field()


class PublishDelivery(SQLModel, table=True):
    __tablename__ = "publish_delivery"
    __table_args__ = (Index("ix_publish_delivery_channel", "channel", "delivered_at"),)
    delivery_id: str = Field(primary_key=True, max_length=200)
    channel: str = Field(max_length=64)
    kind: str = Field(max_length=10)
    items: int
    lag_ms: int  # the oldest change's commit to the receiver's 2xx
    delivered_at: datetime = created_at_field()
