"""SQLModel tables: the state of record. Importing this package registers every table
on `SQLModel.metadata` (Alembic and tests rely on that)."""

from models.auth import ApiKey
from models.idempotency import IdempotencyRecord

__all__ = ["ApiKey", "IdempotencyRecord"]
