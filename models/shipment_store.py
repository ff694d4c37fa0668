"""The SQL of shipments (shipment, shipment_line) as the order steps use it, inside the
step's transaction, after the order row is locked."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class ShipmentLine:
    line: str
    sku: str
    qty: int
    picked: int


@dataclass(frozen=True)
class Shipment:
    """A shipment row with its lines (domain.fulfilment asks its rules of it)."""

    id: str
    location: str
    kind: str  # stock | dropship
    status: str
    reservation_key: str | None
    supplier: str | None
    lines: tuple[ShipmentLine, ...]

    @property
    def reservation(self) -> str:
        """The key of the stock reservation a stock shipment ships on."""
        if self.reservation_key is None:
            raise ValueError(f"shipment {self.id} ({self.kind}) holds no reservation")
        return self.reservation_key


def from_answer(row: Any) -> Shipment:
    """The Shipment of a row `answer` (or a write that answers like it) gave."""
    return _shipment(row, (ShipmentLine(*ln) for ln in row.lines))


def _shipment(head: Any, lines: Iterable[ShipmentLine]) -> Shipment:
    return Shipment(
        head.id,
        head.location,
        head.kind,
        head.status,
        head.reservation_key,
        head.supplier,
        tuple(lines),
    )


async def of_order(conn: AsyncConnection, order_id: str) -> list[Shipment]:
    sql = text("SELECT * FROM shipment WHERE order_id = :order_id ORDER BY created_at, id")
    heads = list(await conn.execute(sql, {"order_id": order_id}))
    by_shipment: dict[str, list[ShipmentLine]] = defaultdict(list)
    sql = text(
        "SELECT * FROM shipment_line WHERE shipment_id = ANY(:shipment_ids) ORDER BY length(line), line"
    )
    for r in await conn.execute(sql, {"shipment_ids": [h.id for h in heads]}):
        by_shipment[r.shipment_id].append(ShipmentLine(r.line, r.sku, r.qty, r.picked))
    return [_shipment(h, by_shipment[h.id]) for h in heads]


# The shipment's lines as [line, sku, qty, picked], beside its row (`s`).
_LINES = (
    "coalesce((SELECT json_agg(json_build_array(l.line, l.sku, l.qty, l.picked)"
    " ORDER BY length(l.line), l.line) FROM shipment_line l WHERE l.shipment_id = s.id), '[]') AS lines"
)
_WITH_LINES = "SELECT s.*, " + _LINES + " FROM shipment s WHERE s.id = :shipment_id"  # noqa: S608 (constant fragments)
ANSWER = text(_WITH_LINES)
ONE = text(_WITH_LINES + " AND s.order_id = :order_id")
# A warehouse step's write answers the shipment as the transaction has left it: the lines
# written by earlier statements of the transaction are in the statement's snapshot.
_ANSWERED = " RETURNING s.*, " + _LINES


async def one(conn: AsyncConnection, order_id: str, shipment_id: str) -> Shipment | None:
    """The order's shipment with its lines, in one statement (every warehouse step's load)."""
    head = (await conn.execute(ONE, {"shipment_id": shipment_id, "order_id": order_id})).first()
    return None if head is None else from_answer(head)


async def answer(conn: AsyncConnection, shipment_id: str) -> Any:
    """The shipment row with its lines ([line, sku, qty, picked]), in one statement: what a
    warehouse step answers its route with."""
    return (await conn.execute(ANSWER, {"shipment_id": shipment_id})).one()


async def count(conn: AsyncConnection, order_id: str) -> int:
    sql = text("SELECT count(*) FROM shipment WHERE order_id = :order_id")
    return int((await conn.execute(sql, {"order_id": order_id})).scalar_one())


@dataclass(frozen=True)
class NewShipment:
    id: str
    order_id: str
    location: str
    kind: str  # stock (allocated, with a reservation) | dropship (requested from its supplier)
    promise: str
    lines: list[tuple[str, str, int]]  # (order line, sku, units)
    reservation_key: str | None = None
    supplier: str | None = None


# The shipment and its lines in one statement (the lines' foreign key, checked at the end of
# the statement, sees the row).
_INSERT = text(
    "WITH head AS (INSERT INTO shipment (id, order_id, location, kind, status, promise, reservation_key,"
    " supplier, packages, created_at, updated_at) VALUES (:shipment_id, :order_id, :location, :kind, :status,"
    " :promise, :reservation_key, :supplier, '[]', now(), now()) RETURNING id)"
    " INSERT INTO shipment_line (shipment_id, line, sku, qty, picked)"
    " SELECT head.id, l.line, l.sku, l.qty, 0 FROM head,"
    " unnest(CAST(:lines AS text[]), CAST(:skus AS text[]), CAST(:qtys AS int[])) AS l(line, sku, qty)"
)


async def insert(conn: AsyncConnection, new: NewShipment) -> None:
    await conn.execute(
        _INSERT,
        {
            "shipment_id": new.id,
            "order_id": new.order_id,
            "location": new.location,
            "kind": new.kind,
            "status": "allocated" if new.kind == "stock" else "requested",
            "promise": new.promise,
            "reservation_key": new.reservation_key,
            "supplier": new.supplier,
            "lines": [line for line, _, _ in new.lines],
            "skus": [sku for _, sku, _ in new.lines],
            "qtys": [qty for _, _, qty in new.lines],
        },
    )


_SET_STATUS = text(
    "UPDATE shipment s SET status = :status, updated_at = now() WHERE s.id = :shipment_id" + _ANSWERED  # noqa: S608 (constant fragments)
)


async def set_status(conn: AsyncConnection, shipment_id: str, status: str) -> Any:
    """Answers the shipment as `answer` does."""
    return (await conn.execute(_SET_STATUS, {"status": status, "shipment_id": shipment_id})).one()


async def set_picked(conn: AsyncConnection, shipment_id: str, line: str, picked: int) -> None:
    """What was found is what the line now holds (the rest was released)."""
    sql = text(
        "UPDATE shipment_line SET qty = :picked, picked = :picked WHERE shipment_id = :shipment_id AND line = :line"
    )
    await conn.execute(sql, {"picked": picked, "shipment_id": shipment_id, "line": line})


_PACK = text(
    "UPDATE shipment s SET status = 'packed', service = :service, packages = CAST(:packages AS jsonb),"  # noqa: S608 (constant fragments)
    " updated_at = now() WHERE s.id = :shipment_id" + _ANSWERED
)


async def pack(conn: AsyncConnection, shipment_id: str, service: str, packages: list[dict[str, Any]]) -> Any:
    """Answers the shipment as `answer` does."""
    params = {"service": service, "packages": json.dumps(packages), "shipment_id": shipment_id}
    return (await conn.execute(_PACK, params)).one()


_MARK_SHIPPED = text(
    "UPDATE shipment s SET status = 'shipped', carrier = :carrier, service = coalesce(service, :service),"  # noqa: S608 (constant fragments)
    " tracking = :tracking, shipped_at = now(), updated_at = now() WHERE s.id = :shipment_id" + _ANSWERED
)


async def mark_shipped(
    conn: AsyncConnection, shipment_id: str, carrier: str, service: str, tracking: str
) -> Any:
    """Answers the shipment as `answer` does."""
    params = {"carrier": carrier, "service": service, "tracking": tracking, "shipment_id": shipment_id}
    return (await conn.execute(_MARK_SHIPPED, params)).one()


async def take_units(conn: AsyncConnection, shipment_id: str, line: str, units: int) -> None:
    """Cancelled units leave the shipment line (and what was picked of them)."""
    sql = text(
        "UPDATE shipment_line SET qty = qty - :units, picked = least(picked, qty - :units)"
        " WHERE shipment_id = :shipment_id AND line = :line"
    )
    await conn.execute(sql, {"units": units, "shipment_id": shipment_id, "line": line})


async def units_left(conn: AsyncConnection, shipment_id: str) -> int:
    sql = text("SELECT coalesce(sum(qty), 0) FROM shipment_line WHERE shipment_id = :shipment_id")
    return int((await conn.execute(sql, {"shipment_id": shipment_id})).scalar_one())


@dataclass(frozen=True)
class Unattached:
    """A reservation of the order that no shipment ships on."""

    key: str
    skus: list[str]
    holding: bool  # units are still reserved under it


async def unattached_reservations(conn: AsyncConnection, order_id: str, prefix: str) -> list[Unattached]:
    """The order's reservations under keys starting `prefix` that no shipment of it names: a
    sourcing attempt whose reservation committed in its batch (its own transaction) while the
    step's transaction did not (the worker died in between, or a later statement failed)."""
    sql = text(
        "SELECT r.key, array_agg(DISTINCT r.sku ORDER BY r.sku) AS skus,"
        " bool_or(r.consumed + r.released < r.qty) AS holding FROM reservation r"
        " WHERE r.ref = :order_id AND starts_with(r.key, :prefix) AND r.key NOT IN"
        " (SELECT reservation_key FROM shipment WHERE order_id = :order_id AND reservation_key IS NOT NULL)"
        " GROUP BY r.key ORDER BY r.key"
    )
    rows = await conn.execute(sql, {"order_id": order_id, "prefix": prefix})
    return [Unattached(r.key, list(r.skus), bool(r.holding)) for r in rows]
