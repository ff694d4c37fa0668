"""API keys and roles.

Every route declares who may call it with `guard(...)`, in one place next to its path:

    @router.get("/v1/skus", **guard(ANY))
    @router.post("/v1/api-keys", status_code=201, **guard(Role.admin))

`guard` adds the role check as a dependency and records the roles in the OpenAPI document
as `x-roles`, which the auth-matrix test walks: a route without a declaration fails it.
`admin` may call every guarded route.

Object-level authorization is one mechanism too, on `Principal`: an object a channel owns
(an order, its shipments, a return, a customer's store credit, the channel itself) is read
through `see(principal, owner_channel, what)`, which answers 404 — never 403, so another
channel's object is not even known to exist — and a list is narrowed by
`channel_scope(principal, named)`. Objects no channel owns (transfers, counts, purchase orders,
the movement ledger, exceptions, the books) are refused to channel keys by role (`NOT_CHANNEL`).
tests/test_object_authz.py walks every route of the OpenAPI document against it."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text

from api.deps import EngineDep, single_read
from api.problems import Problem, not_found
from api.rate_limits import ANONYMOUS, READS, WRITES, RateLimits, client_ip


class Role(StrEnum):
    admin = "admin"
    channel = "channel"
    warehouse = "warehouse"
    approver = "approver"
    finance = "finance"
    readonly = "readonly"


ALL_ROLES: frozenset[Role] = frozenset(Role)
NOT_CHANNEL = (Role.warehouse, Role.approver, Role.finance, Role.readonly)  # any role but channel
ANY: Literal["any"] = "any"  # every role
PUBLIC: Literal["public"] = "public"  # no key needed (health, metrics, docs)

KEY_PREFIX = "omf_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    channel: str | None
    name: str

    def can_see_channel(self, channel: str) -> bool:
        return self.role is not Role.channel or self.channel == channel


def see(who: Principal | None, owner: str | None, what: str) -> None:
    """404 unless the object exists (`owner` is the channel it belongs to; None: there is no
    such object) and `who` may see that channel's objects (None: the API re-reading an object
    it has already checked)."""
    if owner is None or (who is not None and not who.can_see_channel(owner)):
        raise not_found(what)


def channel_scope(who: Principal, named: str | None) -> str | None:
    """The channel a list or a feed is narrowed to: a channel key's own (naming another is a
    404, as if it did not exist), any other key's choice (None: every channel)."""
    if who.role is not Role.channel:
        return named
    if named is not None and named != who.channel:
        raise not_found(f"channel {named}")
    return who.channel


class KeyCache:
    """Principals by key hash, each kept `ttl` seconds: a key lookup was one database round
    trip on every request. Bounded; revoking a key drops it here at once."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl, principal)

    def forget(self, key_id: str) -> None:
        for key_hash, (_, principal) in list(self._entries.items()):
            if principal.key_id == key_id:
                del self._entries[key_hash]


_bearer = HTTPBearer(auto_error=False, description="An omniflow API key: `Authorization: Bearer omf_…`")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, slug="unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    limits: RateLimits = request.app.state.rate_limits
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        await limits.hit(request, ANONYMOUS, client_ip(request))
        raise _unauthorized("an API key is required: send `Authorization: Bearer <key>`")
    key_hash = hash_key(credentials.credentials)
    cache: KeyCache = request.app.state.key_cache
    principal = cache.get(key_hash)
    if principal is None:
        async with single_read(engine) as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, role, channel, name FROM api_key WHERE key_hash = :h AND revoked_at IS NULL"
                    ),
                    {"h": key_hash},
                )
            ).first()
        if row is None:
            await limits.hit(request, ANONYMOUS, client_ip(request))
            raise _unauthorized("the API key is not valid")
        principal = Principal(key_id=row.id, role=Role(row.role), channel=row.channel, name=row.name)
        cache.put(key_hash, principal)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


class _RoleCheck:
    def __init__(self, roles: frozenset[Role]) -> None:
        self.roles = roles

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        if principal.role not in self.roles:
            allowed = ", ".join(sorted(self.roles))
            raise Problem(
                403, f"role '{principal.role}' may not do this (allowed: {allowed})", slug="forbidden"
            )
        return principal


async def _rate_limit(request: Request, principal: CurrentPrincipal) -> None:
    """The key's count of reads or writes (api.rate_limits); 429 past the limit."""
    route_class = READS if request.method in ("GET", "HEAD") else WRITES
    await request.app.state.rate_limits.hit(request, route_class, principal.key_id)


async def _require_idempotency_key(request: Request) -> None:
    if not request.headers.get("idempotency-key", "").strip():
        raise Problem(
            400,
            "this request needs an Idempotency-Key header (any unique string per business action)",
            slug="idempotency-key-required",
        )


def guard(
    *roles: Role | Literal["any", "public"],
    idempotency: Literal["required", "optional"] | None = None,
) -> dict[str, Any]:
    """Route keyword arguments: the role check and its OpenAPI record."""
    extra: dict[str, Any] = {}
    dependencies: list[Any] = []
    if PUBLIC in roles:
        extra["x-roles"] = [PUBLIC]
    else:
        allowed = ALL_ROLES if ANY in roles else frozenset({Role.admin, *(Role(r) for r in roles)})
        extra["x-roles"] = sorted(allowed)
        dependencies += [Depends(_rate_limit), Depends(_RoleCheck(allowed))]
    if idempotency == "required":
        dependencies.append(Depends(_require_idempotency_key))
    if idempotency:  # api.openapi declares the Idempotency-Key header from this, once
        extra["x-idempotency"] = idempotency
    return {"dependencies": dependencies, "openapi_extra": extra}
