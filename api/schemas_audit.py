"""The audit trail as the API shows it (`GET /v1/audit`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas import ResponseModel


class AuditActor(ResponseModel):
    key_id: str = Field(description="The API key that made the request.")
    role: str
    name: str


class AuditObjectRead(ResponseModel):
    type: str = Field(description="e.g. sku, channel_policy, api_key, exception, purchase_order, return")
    id: str


class AuditEntryRead(ResponseModel):
    id: int
    at: datetime = Field(description="When the change committed (its transaction's time).")
    actor: AuditActor
    action: str = Field(description="e.g. create, put, revoke, adjust, resolve, approve, cancel")
    object: AuditObjectRead
    route: str = Field(description="The method and route template of the request.")
    before: Any = Field(default=None, description="The object before the change, where it applies.")
    after: Any = Field(default=None, description="The object (or the decision) after the change.")
    request_id: str = Field(description="The request's `X-Request-Id`.")


def entry_read(row: Any) -> AuditEntryRead:
    r = row._mapping
    return AuditEntryRead(
        id=r["id"],
        at=r["at"],
        actor=AuditActor(key_id=r["actor_key_id"], role=r["actor_role"], name=r["actor_name"]),
        action=r["action"],
        object=AuditObjectRead(type=r["object_type"], id=r["object_id"]),
        route=r["route"],
        before=r["before"],
        after=r["after"],
        request_id=r["request_id"],
    )
