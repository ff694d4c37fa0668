"""The human queues: every open exception is a row here and a timed wait in its workflow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class ExceptionCase(SQLModel, table=True):
    __tablename__ = "exception"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved', 'cancelled')", name="ck_exception_status"),
        Index("ix_exception_open", "status", "kind", "due_at"),
        Index("ix_exception_subject", "subject_type", "subject_id"),
    )
    id: str = Field(primary_key=True, max_length=40)
    key: str = Field(unique=True, max_length=200)  # "{workflow_id}:{step}": opened once
    kind: str = Field(max_length=40)
    subject_type: str = Field(max_length=20)
    subject_id: str = Field(max_length=200)
    workflow_id: str = Field(max_length=200)
    status: str = Field(default="open", max_length=12)
    opened_at: datetime = created_at_field()
    due_at: datetime = Field(sa_type=DateTime(timezone=True))
    escalation_level: int = 0
    priority: float = 0.0
    value_at_risk: int = 0
    actions: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    details: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    resolution: dict[str, object] | None = Field(default=None, sa_column=Column(JSONB))
    resolved_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    resolved_by: str | None = Field(default=None, max_length=200)
