"""Available-to-promise per channel, and its change feed."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth import ANY, CurrentPrincipal, Principal, channel_scope, guard
from api.deps import EngineDep
from api.problems import Problem, not_found
from api.schemas import ResponseModel
from models.availability import FeedEvent, decode_after, encode_after, read_feed

router = APIRouter(tags=["availability"])

MAX_WAIT_SECONDS = 30
_POLL_SECONDS = 0.1
_AFTER = re.compile(r"^\d+(\.\d+)?$")


class AvailabilityItem(ResponseModel):
    channel: str
    sku: str
    available: int


class AvailabilityList(ResponseModel):
    items: list[AvailabilityItem]


@router.get("/v1/availability", response_model=AvailabilityList, **guard(ANY))
async def get_availability(
    engine: EngineDep,
    principal: CurrentPrincipal,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    sku: Annotated[
        list[str] | None, Query(max_length=500, description="One or more SKUs (repeat the parameter).")
    ] = None,
) -> AvailabilityList:
    """ATP per SKU for a channel (kits derived from their components), as of the last
    committed change. Channel keys see their own channel."""
    ch = channel_scope(principal, channel)
    async with engine.connect() as conn:
        if (
            ch is not None
            and (await conn.execute(text("SELECT 1 FROM channel WHERE code = :c"), {"c": ch})).first() is None
        ):
            raise not_found(f"channel {ch}")
        rows = await conn.execute(
            text(
                "SELECT c.code AS channel, s.code AS sku, coalesce(a.available, 0) AS available FROM channel c "
                "CROSS JOIN sku s LEFT JOIN channel_availability a ON a.channel = c.code AND a.sku = s.code "
                "WHERE (CAST(:ch AS text) IS NULL OR c.code = :ch) AND (CAST(:skus AS text[]) IS NULL OR "
                "s.code = ANY(CAST(:skus AS text[]))) ORDER BY c.code, s.code"
            ),
            {"ch": ch, "skus": sku},
        )
        items = [AvailabilityItem.model_validate(r._mapping) for r in rows]
    if sku and not items:
        raise not_found(f"SKU {', '.join(sku)}")
    return AvailabilityList(items=items)


class FeedEventRead(ResponseModel):
    seq: int
    sku: str
    available: int


class FeedPage(ResponseModel):
    channel: str
    events: list[FeedEventRead]
    next_after: str = Field(description="Pass as `after` to read on. Opaque.")


@router.get("/v1/availability/changes", response_model=FeedPage, **guard(ANY))
async def availability_changes(
    request: Request,
    engine: EngineDep,
    principal: CurrentPrincipal,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[
        str | None, Query(max_length=64, description="`next_after` of the previous page; 0 = start")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Long-poll up to this many seconds")
    ] = 0,
) -> FeedPage:
    """The change feed of a channel's ATP. A consumer that applies every page in order ends
    with the true ATP: events are ordered so that one committing late is never skipped.
    A long-poll (`wait` > 0) counts against the key's long-poll limit, and a key holds at most
    OMNIFLOW_RATE_LIMIT_LONG_POLLS_CONCURRENT open at once (429 past either)."""
    ch = _feed_channel(principal, channel)
    if after is not None and not _AFTER.match(after):
        raise Problem(
            422,
            "`after` must be a next_after value",
            slug="validation-error",
            errors=[{"loc": ["query", "after"], "msg": "not a feed position"}],
        )
    position = decode_after(after)
    if wait > 0:
        async with request.app.state.rate_limits.long_poll(request, principal.key_id):
            events = await _poll_feed(engine, ch, position, limit, wait)
    else:
        events = await _poll_feed(engine, ch, position, limit, 0)
    if events:
        position = (events[-1].txid, events[-1].seq)
    return FeedPage(
        channel=ch,
        events=[FeedEventRead(seq=e.seq, sku=e.sku, available=e.available) for e in events],
        next_after=encode_after(*position),
    )


def _feed_channel(principal: Principal, channel: str | None) -> str:
    """The channel whose feed is read: the caller's own, or the one named (422 if none is)."""
    ch = channel_scope(principal, channel)
    if ch is None:
        raise Problem(
            422,
            "name the channel",
            slug="validation-error",
            errors=[{"loc": ["query", "channel"], "msg": "Field required"}],
        )
    return ch


async def _poll_feed(
    engine: AsyncEngine, channel: str, position: tuple[int, int], limit: int, wait: float
) -> list[FeedEvent]:
    """The feed's next events after `position`; none yet, ask again until `wait` seconds are up."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        async with engine.connect() as conn:
            events = await read_feed(conn, channel, position, limit)
        if events or asyncio.get_running_loop().time() >= deadline:
            return events
        await asyncio.sleep(_POLL_SECONDS)
