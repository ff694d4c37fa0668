from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ConfigDict, Field, model_validator
from sqlalchemy import text

from api.audit_trail import AuditDep
from api.auth import ANY, CurrentPrincipal, Role, generate_key, guard
from api.deps import EngineDep
from api.problems import not_found
from api.schemas import Page, RequestModel, ResponseModel
from domain.exceptions import RESOLVER_ROLES, may_resolve
from models.auth import issue_key_row
from models.base import new_id

router = APIRouter(tags=["api keys"])


class ApiKeyCreate(RequestModel):
    # channel_binding below, as the schema says it: a channel key names its channel, no other does.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "if": {"properties": {"role": {"const": Role.channel.value}}},
            "then": {"required": ["channel"], "properties": {"channel": {"type": "string"}}},
            "else": {"properties": {"channel": {"type": "null"}}},
        },
    )
    role: Role
    channel: str | None = Field(default=None, min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def channel_binding(self) -> ApiKeyCreate:
        if self.role is Role.channel and not self.channel:
            raise ValueError("a channel key must name its channel")
        if self.role is not Role.channel and self.channel:
            raise ValueError("only channel keys are bound to a channel")
        return self


class ApiKeyRead(ResponseModel):
    id: str
    name: str
    role: Role
    channel: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ResponseModel):
    id: str
    name: str
    role: Role
    channel: str | None
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated, **guard(Role.admin))
async def create_api_key(body: ApiKeyCreate, engine: EngineDep, audit: AuditDep) -> ApiKeyCreated:
    """Create a key. The secret is in the response and nowhere else (so this route keeps no
    Idempotency-Key replay: a stored response would be a stored secret)."""
    secret = generate_key()
    row = issue_key_row(
        key_id=new_id("key"),
        name=body.name or f"{body.role} key",
        role=body.role,
        channel=body.channel,
        secret=secret,
    )
    async with audit.change(engine, "api_key", str(row["id"]), "create") as (conn, change):
        await conn.execute(
            text(
                "INSERT INTO api_key (id, name, role, channel, key_hash, prefix) "
                "VALUES (:id, :name, :role, :channel, :key_hash, :prefix)"
            ),
            row,
        )
        change.after = {k: row[k] for k in ("name", "role", "channel", "prefix")}
    return ApiKeyCreated(
        id=str(row["id"]), name=str(row["name"]), role=body.role, channel=body.channel, key=secret
    )


@router.get("/v1/api-keys", response_model=Page[ApiKeyRead], **guard(Role.admin))
async def list_api_keys(
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[ApiKeyRead]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, name, role, channel, prefix, created_at, revoked_at FROM api_key "
                    "WHERE (CAST(:cursor AS text) IS NULL OR id > :cursor) ORDER BY id LIMIT :limit"
                ),
                {"cursor": cursor, "limit": limit + 1},
            )
        ).all()
    items = [ApiKeyRead.model_validate(r._mapping) for r in rows[:limit]]
    return Page(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


@router.delete("/v1/api-keys/{key_id}", status_code=204, **guard(Role.admin))
async def revoke_api_key(key_id: str, engine: EngineDep, request: Request, audit: AuditDep) -> None:
    """Revoke a key; it stops working at once on this API process and within
    `OMNIFLOW_API_KEY_CACHE_SECONDS` on the others."""
    async with audit.change(engine, "api_key", key_id, "revoke") as (conn, change):
        revoked = (
            await conn.execute(
                text(
                    "UPDATE api_key SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"
                    " RETURNING revoked_at"
                ),
                {"id": key_id},
            )
        ).scalar()
        if revoked is None:
            raise not_found(f"API key {key_id}")
        change.before, change.after = {"revoked_at": None}, {"revoked_at": revoked.isoformat()}
    request.app.state.key_cache.forget(key_id)


class CurrentKeyRead(ResponseModel):
    id: str
    name: str
    role: Role
    channel: str | None
    decides: list[str] = Field(
        description="The exception kinds this key may decide (POST /v1/exceptions/{id}/resolve)."
    )


@router.get("/v1/me", response_model=CurrentKeyRead, **guard(ANY))
async def current_key(principal: CurrentPrincipal) -> CurrentKeyRead:
    """The key the request was made with: its role, channel and the exception kinds it may
    decide (what the operations console signs in with)."""
    return CurrentKeyRead(
        id=principal.key_id,
        name=principal.name,
        role=principal.role,
        channel=principal.channel,
        decides=sorted(kind for kind in RESOLVER_ROLES if may_resolve(principal.role, kind)),
    )
