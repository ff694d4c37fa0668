"""The audit row of a human action the API writes itself, in the transaction of its change:

    async with audit.change(engine, "sku", body.code, "create", after=body) as (conn, change):
        ...                        # the route's writes, on conn
        change.before = ...        # what it was; change.after: what it is now (a model or JSON)
        change.happened = created  # False: nothing changed (a create answered 200), no row

On a clean exit the row is appended on the same connection just before COMMIT; a refusal
(a Problem raised inside) rolls both back, so one is never without the other. Actions that a
workflow carries out take `audit.actor` in their update payload instead, and the activity
writes the row in its own keyed transaction (models.audit, activities)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.auth import CurrentPrincipal
from domain.audit import Actor
from models import audit as trail

T = TypeVar("T")


@dataclass
class Change:
    conn: AsyncConnection
    object_id: str
    before: Any = None
    after: Any = None
    happened: bool = True
    key: str | None = None  # once-only key, for a change that is itself keyed

    async def done(self, after: Awaitable[T]) -> T:
        """`after` is what the object is now; answered as well."""
        now = await after
        self.after = now
        return now


@dataclass(frozen=True)
class AuditTrail:
    actor: Actor

    @asynccontextmanager
    async def change(
        self, engine: AsyncEngine, object_type: str, object_id: str, action: str, after: Any = None
    ) -> AsyncIterator[tuple[AsyncConnection, Change]]:
        async with engine.begin() as conn:
            change = Change(conn, object_id, after=after)
            yield conn, change
            if change.happened:
                await self.record(conn, change, object_type, action)

    async def record(self, conn: AsyncConnection, change: Change, object_type: str, action: str) -> None:
        """For a route whose transaction is opened elsewhere (a store's own helper)."""
        obj = trail.AuditObject(object_type, change.object_id)
        before, after = _plain(change.before), _plain(change.after)
        await trail.append(conn, self.actor, action, obj, before=before, after=after, key=change.key)


def _plain(value: Any) -> Any:
    """A response or request model as its JSON; anything else as it is."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


async def audit_trail(request: Request, principal: CurrentPrincipal) -> AuditTrail:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    actor = Actor(
        key_id=principal.key_id,
        role=str(principal.role),
        name=principal.name,
        request_id=str(getattr(request.state, "request_id", "")),
        route=f"{request.method} {path}",
    )
    return AuditTrail(actor)


AuditDep = Annotated[AuditTrail, Depends(audit_trail)]
