"""Read models of the inventory workflows: transfers and cycle counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, String
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class Transfer(SQLModel, table=True):
    __tablename__ = "transfer"
    __table_args__ = (
        CheckConstraint(
            "status IN ('requested', 'shipped', 'received', 'discrepancy', 'completed', 'cancelled')",
            name="ck_transfer_status",
        ),
    )
    id: str = Field(primary_key=True, max_length=64)  # the transfer number; workflow transfer-{id}
    from_location: str = Field(sa_column=Column(String(64), ForeignKey("location.code"), nullable=False))
    to_location: str = Field(sa_column=Column(String(64), ForeignKey("location.code"), nullable=False))
    status: str = Field(default="requested", max_length=12)
    workflow_id: str = Field(max_length=200)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class TransferLine(SQLModel, table=True):
    __tablename__ = "transfer_line"
    __table_args__ = (
        CheckConstraint(
            "qty > 0 AND shipped >= 0 AND received >= 0 AND damaged >= 0", name="ck_transfer_line"
        ),
    )
    transfer_id: str = Field(sa_column=Column(String(64), ForeignKey("transfer.id"), primary_key=True))
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), primary_key=True))
    lot: str = Field(default="", primary_key=True, max_length=64)
    qty: int
    shipped: int = 0
    received: int = 0
    damaged: int = 0


class CycleCount(SQLModel, table=True):
    __tablename__ = "cycle_count"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'submitted', 'awaiting_approval', 'posted', 'rejected', 'cancelled')",
            name="ck_cycle_count_status",
        ),
    )
    id: str = Field(primary_key=True, max_length=64)
    location: str = Field(sa_column=Column(String(64), ForeignKey("location.code"), nullable=False))
    status: str = Field(default="open", max_length=20)
    workflow_id: str = Field(max_length=200)
    created_at: datetime = created_at_field()
    submitted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    posted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class CycleCountLine(SQLModel, table=True):
    __tablename__ = "cycle_count_line"
    count_id: str = Field(sa_column=Column(String(64), ForeignKey("cycle_count.id"), primary_key=True))
    sku: str = Field(sa_column=Column(String(64), ForeignKey("sku.code"), primary_key=True))
    lot: str = Field(default="", primary_key=True, max_length=64)
    expected: int | None = None  # system quantity when the count was submitted
    counted: int | None = None
    variance: int | None = None
    variance_value: int | None = None
    within_tolerance: bool | None = None
