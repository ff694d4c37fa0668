"""Master data: SKUs, locations, channels (with their policies) and suppliers. Creates are
idempotent by code (the same body again: 200 with the existing record; another body: 409);
a change that moves a channel's ATP refreshes availability and the feed in its transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.audit_trail import AuditDep
from api.auth import ANY, CurrentPrincipal, Role, channel_scope, guard, see
from api.deps import EngineDep
from api.pagination import PageDep, PageParams, next_cursor
from api.problems import Problem, not_found
from api.read_models.catalog import read_channel, read_policy, read_sku, read_supplier, skus_stocked_at
from api.schemas import Page
from api.schemas_catalog import (
    ChannelCreate,
    ChannelRead,
    LocationCreate,
    LocationRead,
    PolicyPut,
    PolicyRead,
    SkuCreate,
    SkuRead,
    SupplierCreate,
    SupplierRead,
)
from models.availability import lock_skus, refresh_availability
from models.catalog_intake import SupplierItemTerms, insert_supplier

router = APIRouter(tags=["master data"])
Route = TypeVar("Route", bound=Callable[..., Coroutine[Any, Any, Any]])
T = TypeVar("T")
ReadOne = Callable[[AsyncConnection, str], Awaitable["T | None"]]


def _create_by_code(path: str, model: type) -> Callable[[Route], Route]:
    """A master-data create: 201 with the record, 200 (documented) when the same body comes
    again, 409 for another body under the same code; admin only, Idempotency-Key optional."""
    return router.post(
        path,
        status_code=201,
        response_model=model,
        responses={200: {"model": model, "description": "It already exists with the same data."}},
        **guard(Role.admin, idempotency="optional"),
    )


def _invalid(loc: Sequence[str | int], msg: str) -> Problem:
    return Problem(422, msg, slug="validation-error", errors=[{"loc": list(loc), "msg": msg}])


def _created_or_existing(created: bool, same: bool, what: str, body: Any) -> JSONResponse:
    if not created and not same:
        raise Problem(409, f"{what} already exists with other data", slug="conflict")
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if created else 200)


async def _codes(conn: AsyncConnection, table: str, codes: list[str], where: str = "true") -> dict[str, Any]:
    rows = await conn.execute(text(f"SELECT * FROM {table} WHERE code = ANY(:c) AND {where}"), {"c": codes})  # noqa: S608
    return {r.code: r for r in rows}


async def _known_skus(conn: AsyncConnection, skus: list[str], field: str) -> dict[str, Any]:
    """The SKU rows of `skus` (a list in the body under `field`); 422 naming the first unknown one."""
    found = await _codes(conn, "sku", skus)
    for i, sku in enumerate(skus):
        if sku not in found:
            raise _invalid(["body", field, i, "sku"], f"unknown SKU {sku!r}")
    return found


async def _page_by_code(
    engine: AsyncEngine, page: PageParams, codes_sql: str, params: dict[str, Any], read: ReadOne[T]
) -> Page[T]:
    """A page of records in code order: the codes after the cursor (`:a`, `:n`), each read."""
    after = str(page.after[0]) if page.after else ""
    async with engine.connect() as conn:
        found = await conn.execute(text(codes_sql), {**params, "a": after, "n": page.limit + 1})
        codes = list(found.scalars().all())
        items = [x for c in codes[: page.limit] if (x := await read(conn, c)) is not None]
    return Page(items=items, next_cursor=next_cursor(codes, page.limit, lambda c: [c]))


async def _one_by_code(engine: AsyncEngine, code: str, read: ReadOne[T], what: str) -> T:
    async with engine.connect() as conn:
        found = await read(conn, code)
    if found is None:
        raise not_found(f"{what} {code}")
    return found


# -- SKUs ------------------------------------------------------------------------------


@_create_by_code("/v1/skus", SkuRead)
async def create_sku(body: SkuCreate, engine: EngineDep, audit: AuditDep) -> JSONResponse:
    """Create a SKU (a kit names its simple components)."""
    async with audit.change(engine, "sku", body.code, "create", after=body) as (conn, change):
        found = await _known_skus(conn, [c.sku for c in body.components], "components")
        for i, comp in enumerate(body.components):
            if found[comp.sku].kind != "simple":
                raise _invalid(
                    ["body", "components", i, "sku"], f"{comp.sku} is a kit; kits are made of simple SKUs"
                )
        created = change.happened = (
            await conn.execute(
                text(
                    "INSERT INTO sku (code, name, kind, unit_cost, price, currency, tracking, returnable_days, release_at) "
                    "VALUES (:code, :name, :kind, :unit_cost, :price, :currency, :tracking, :returnable_days, :release_at) "
                    "ON CONFLICT (code) DO NOTHING RETURNING code"
                ),
                body.model_dump(exclude={"components"}),
            )
        ).first() is not None
        if created:
            for comp in body.components:
                await conn.execute(
                    text("INSERT INTO sku_component (kit_sku, component_sku, qty) VALUES (:k, :c, :q)"),
                    {"k": body.code, "c": comp.sku, "q": comp.qty},
                )
        sku = await read_sku(conn, body.code)
    assert sku is not None
    same = sku.model_dump(exclude={"created_at", "components"}) == {
        **body.model_dump(exclude={"components"})
    } and sorted((c["sku"], c["qty"]) for c in sku.components) == sorted(
        (c.sku, c.qty) for c in body.components
    )
    return _created_or_existing(created, same, f"SKU {body.code}", sku)


@router.get("/v1/skus", response_model=Page[SkuRead], **guard(ANY))
async def list_skus(
    engine: EngineDep, page: PageDep, kind: Annotated[str | None, Query(pattern="^(simple|kit)$")] = None
) -> Page[SkuRead]:
    sql = "SELECT code FROM sku WHERE code > :a AND (CAST(:k AS text) IS NULL OR kind = :k) ORDER BY code LIMIT :n"
    return await _page_by_code(engine, page, sql, {"k": kind}, read_sku)


@router.get("/v1/skus/{code}", response_model=SkuRead, **guard(ANY))
async def get_sku(code: str, engine: EngineDep) -> SkuRead:
    return await _one_by_code(engine, code, read_sku, "SKU")


# -- locations -------------------------------------------------------------------------


@_create_by_code("/v1/locations", LocationRead)
async def create_location(body: LocationCreate, engine: EngineDep, audit: AuditDep) -> JSONResponse:
    """Create a location (dc, store, 3pl, dropship) with coordinates and per-unit ship cost. A
    `dropship` location names its `supplier` (a drop-ship supplier): the SKUs it supplies are
    sourced from it and shipped by the supplier."""
    if body.supplier is not None and body.type != "dropship":
        raise _invalid(["body", "supplier"], "only a dropship location has a supplier")
    async with audit.change(engine, "location", body.code, "create", after=body) as (conn, change):
        if body.supplier is not None:
            dropship = (
                await conn.execute(
                    text("SELECT dropship FROM supplier WHERE code = :c"), {"c": body.supplier}
                )
            ).scalar()
            if dropship is None:
                raise _invalid(["body", "supplier"], f"unknown supplier {body.supplier!r}")
            if not dropship:
                raise _invalid(["body", "supplier"], f"supplier {body.supplier!r} does not drop-ship")
        created = change.happened = (
            await conn.execute(
                text(
                    "INSERT INTO location (code, name, type, lat, lon, ship_cost, priority, can_ship, supplier) VALUES "
                    "(:code, :name, :type, :lat, :lon, :ship_cost, :priority, :can_ship, :supplier) "
                    "ON CONFLICT (code) DO NOTHING RETURNING code"
                ),
                body.model_dump(),
            )
        ).first() is not None
        row = (await conn.execute(text("SELECT * FROM location WHERE code = :c"), {"c": body.code})).one()
    location = LocationRead.model_validate(row._mapping)
    same = location.model_dump(exclude={"created_at"}) == body.model_dump()
    return _created_or_existing(created, same, f"location {body.code}", location)


@router.get("/v1/locations", response_model=Page[LocationRead], **guard(ANY))
async def list_locations(
    engine: EngineDep, page: PageDep, include_virtual: Annotated[bool, Query()] = False
) -> Page[LocationRead]:
    after = str(page.after[0]) if page.after else ""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT * FROM location WHERE code > :a AND (:v OR type <> 'virtual') ORDER BY code LIMIT :n"
                ),
                {"a": after, "v": include_virtual, "n": page.limit + 1},
            )
        ).all()
    items = [LocationRead.model_validate(r._mapping) for r in rows[: page.limit]]
    return Page(items=items, next_cursor=next_cursor(list(rows), page.limit, lambda r: [r.code]))


@router.get("/v1/locations/{code}", response_model=LocationRead, **guard(ANY))
async def get_location(code: str, engine: EngineDep) -> LocationRead:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM location WHERE code = :c"), {"c": code})).first()
    if row is None:
        raise not_found(f"location {code}")
    return LocationRead.model_validate(row._mapping)


# -- channels and their policies --------------------------------------------------------


@_create_by_code("/v1/channels", ChannelRead)
async def create_channel(body: ChannelCreate, engine: EngineDep, audit: AuditDep) -> JSONResponse:
    """Create a sales channel: which locations may fulfil it and how it sources."""
    async with audit.change(engine, "channel", body.code, "create", after=body) as (conn, change):
        found = await _codes(conn, "location", body.locations, "type <> 'virtual'")
        for i, loc in enumerate(body.locations):
            if loc not in found:
                raise _invalid(["body", "locations", i], f"unknown location {loc!r}")
        await lock_skus(conn, await skus_stocked_at(conn, body.locations))  # before the first write
        created = change.happened = (
            await conn.execute(
                text(
                    "INSERT INTO channel (code, name, type, sourcing_rule) VALUES (:c, :n, :t, :r) "
                    "ON CONFLICT (code) DO NOTHING RETURNING code"
                ),
                {"c": body.code, "n": body.name or body.code, "t": body.type, "r": body.sourcing_rule},
            )
        ).first() is not None
        if created:
            for loc in body.locations:
                await conn.execute(
                    text("INSERT INTO channel_location (channel, location) VALUES (:c, :l)"),
                    {"c": body.code, "l": loc},
                )
            await refresh_availability(conn, await skus_stocked_at(conn, body.locations))
        channel = await read_channel(conn, body.code)
    assert channel is not None
    same = (channel.name, channel.type, channel.sourcing_rule, sorted(channel.locations)) == (
        body.name or body.code,
        body.type,
        body.sourcing_rule,
        sorted(body.locations),
    )
    return _created_or_existing(created, same, f"channel {body.code}", channel)


@router.get("/v1/channels", response_model=Page[ChannelRead], **guard(ANY))
async def list_channels(engine: EngineDep, page: PageDep, who: CurrentPrincipal) -> Page[ChannelRead]:
    """Every channel; a channel key sees its own."""
    after = str(page.after[0]) if page.after else ""
    async with engine.connect() as conn:
        codes = (
            (
                await conn.execute(
                    text(
                        "SELECT code FROM channel WHERE code > :a AND (CAST(:own AS text) IS NULL OR "
                        "code = :own) ORDER BY code LIMIT :n"
                    ),
                    {"a": after, "own": channel_scope(who, None), "n": page.limit + 1},
                )
            )
            .scalars()
            .all()
        )
        items = [c for code in codes[: page.limit] if (c := await read_channel(conn, code)) is not None]
    return Page(items=items, next_cursor=next_cursor(list(codes), page.limit, lambda c: [c]))


@router.get("/v1/channels/{code}", response_model=ChannelRead, **guard(ANY))
async def get_channel(code: str, engine: EngineDep, who: CurrentPrincipal) -> ChannelRead:
    """One channel (a channel key: its own)."""
    async with engine.connect() as conn:
        channel = await read_channel(conn, code)
    see(who, channel.code if channel is not None else None, f"channel {code}")
    assert channel is not None
    return channel


@router.put("/v1/channels/{code}/policies/{sku}", response_model=PolicyRead, **guard(Role.admin))
async def put_policy(code: str, sku: str, body: PolicyPut, engine: EngineDep, audit: AuditDep) -> PolicyRead:
    """Set a channel's safety stock for a SKU and the units ring-fenced for it per location
    (replaces the previous policy). Every channel's ATP of the SKU is recomputed at once."""
    async with audit.change(engine, "channel_policy", f"{code}/{sku}", "put") as (conn, change):
        channel = await read_channel(conn, code)
        if channel is None:
            raise not_found(f"channel {code}")
        if (await conn.execute(text("SELECT 1 FROM sku WHERE code = :s"), {"s": sku})).first() is None:
            raise not_found(f"SKU {sku}")
        for i, fence in enumerate(body.ringfence):
            if fence.location not in channel.locations:
                raise _invalid(
                    ["body", "ringfence", i, "location"], f"{fence.location} does not fulfil channel {code}"
                )
        await lock_skus(conn, [sku])  # before the first write
        change.before = await read_policy(conn, code, sku)
        await conn.execute(
            text(
                "INSERT INTO channel_policy (channel, sku, safety_stock) VALUES (:c, :s, :q) "
                "ON CONFLICT (channel, sku) DO UPDATE SET safety_stock = EXCLUDED.safety_stock"
            ),
            {"c": code, "s": sku, "q": body.safety_stock},
        )
        await conn.execute(
            text("DELETE FROM channel_ringfence WHERE channel = :c AND sku = :s"), {"c": code, "s": sku}
        )
        for fence in body.ringfence:
            await conn.execute(
                text("INSERT INTO channel_ringfence (channel, sku, location, qty) VALUES (:c, :s, :l, :q)"),
                {"c": code, "s": sku, "l": fence.location, "q": fence.qty},
            )
        await refresh_availability(conn, [sku])
        return await change.done(read_policy(conn, code, sku))


@router.get("/v1/channels/{code}/policies/{sku}", response_model=PolicyRead, **guard(ANY))
async def get_policy(code: str, sku: str, engine: EngineDep, who: CurrentPrincipal) -> PolicyRead:
    """A channel's policy for a SKU; the defaults (no safety stock, no ring-fence) when none is set."""
    async with engine.connect() as conn:
        channel = await read_channel(conn, code)
        see(who, channel.code if channel is not None else None, f"channel {code}")
        if (await conn.execute(text("SELECT 1 FROM sku WHERE code = :s"), {"s": sku})).first() is None:
            raise not_found(f"SKU {sku}")
        return await read_policy(conn, code, sku)


# -- suppliers --------------------------------------------------------------------------


@_create_by_code("/v1/suppliers", SupplierRead)
async def create_supplier(body: SupplierCreate, engine: EngineDep, audit: AuditDep) -> JSONResponse:
    """Create a supplier with its items (cost, minimum order, order multiple) and lead time."""
    async with audit.change(engine, "supplier", body.code, "create", after=body) as (conn, change):
        await _known_skus(conn, [i.sku for i in body.items], "items")
        terms = [SupplierItemTerms(i.sku, i.cost, i.moq, i.order_multiple) for i in body.items]
        created = change.happened = await insert_supplier(
            conn, body.code, body.name, body.lead_time_days, body.dropship, terms
        )
        supplier = await read_supplier(conn, body.code)
    assert supplier is not None
    same = (supplier.name, supplier.lead_time_days, supplier.dropship, supplier.items) == (
        body.name,
        body.lead_time_days,
        body.dropship,
        [i.model_dump() for i in sorted(body.items, key=lambda i: i.sku)],
    )
    return _created_or_existing(created, same, f"supplier {body.code}", supplier)


@router.get("/v1/suppliers", response_model=Page[SupplierRead], **guard(ANY))
async def list_suppliers(engine: EngineDep, page: PageDep) -> Page[SupplierRead]:
    sql = "SELECT code FROM supplier WHERE code > :a ORDER BY code LIMIT :n"
    return await _page_by_code(engine, page, sql, {}, read_supplier)


@router.get("/v1/suppliers/{code}", response_model=SupplierRead, **guard(ANY))
async def get_supplier(code: str, engine: EngineDep) -> SupplierRead:
    return await _one_by_code(engine, code, read_supplier, "supplier")
