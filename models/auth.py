from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime
from sqlmodel import Field, SQLModel

from models.base import created_at_field

ROLES = ("admin", "channel", "warehouse", "approver", "finance", "readonly")


class ApiKey(SQLModel, table=True):
    """An API key. Only the SHA-256 of the secret is stored: keys are 32 random bytes, so a
    fast hash is enough (a slow KDF protects low-entropy passwords, not random tokens)."""

    __tablename__ = "api_key"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="ck_api_key_role"),
        CheckConstraint("(role = 'channel') = (channel IS NOT NULL)", name="ck_api_key_channel_binding"),
    )

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    channel: str | None = Field(default=None, max_length=64)
    key_hash: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)
    created_at: datetime = created_at_field()
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


def issue_key_row(
    *, key_id: str, name: str, role: str, channel: str | None, secret: str
) -> dict[str, object]:
    """The row for a new key; the secret itself is never stored."""
    import hashlib

    return {
        "id": key_id,
        "name": name,
        "role": role,
        "channel": channel,
        "key_hash": hashlib.sha256(secret.encode()).hexdigest(),
        "prefix": secret[:12],
    }
