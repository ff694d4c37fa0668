from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, Index, LargeBinary
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class IdempotencyRecord(SQLModel, table=True):
    """One Idempotency-Key use: the request's fingerprint while it runs, then its response."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        CheckConstraint("state IN ('in_flight', 'done')", name="ck_idempotency_state"),
        Index("ix_idempotency_record_created_at", "created_at"),
    )

    # The scope is the caller (hash of its API key) so two clients never collide.
    scope: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=255)
    method: str = Field(max_length=10)
    path: str = Field(max_length=1000)
    request_hash: str = Field(max_length=64)
    state: str = Field(max_length=12)  # in_flight | done
    response_status: int | None = None
    response_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSONB))
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_at: datetime = created_at_field()
    locked_at: datetime = created_at_field()
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
