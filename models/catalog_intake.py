"""Master data's inserts that are more than one row (the route checks, audits and answers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_SUPPLIER = text(
    "INSERT INTO supplier (code, name, lead_time_days, dropship)"
    " VALUES (:code, :name, :lead_time_days, :dropship)"
    " ON CONFLICT (code) DO NOTHING RETURNING code"
)
_SUPPLIER_ITEM = text(
    "INSERT INTO supplier_item (supplier, sku, cost, moq, order_multiple)"
    " VALUES (:supplier, :sku, :cost, :moq, :order_multiple)"
)


@dataclass(frozen=True)
class SupplierItemTerms:
    sku: str
    cost: int
    moq: int
    order_multiple: int


async def insert_supplier(
    conn: AsyncConnection,
    code: str,
    name: str,
    lead_time_days: int,
    dropship: bool,
    items: Sequence[SupplierItemTerms],
) -> bool:
    """The supplier and its items, unless a supplier of that code exists (False then)."""
    row = {"code": code, "name": name, "lead_time_days": lead_time_days, "dropship": dropship}
    if (await conn.execute(_SUPPLIER, row)).first() is None:
        return False
    for item in items:
        await conn.execute(
            _SUPPLIER_ITEM,
            {
                "supplier": code,
                "sku": item.sku,
                "cost": item.cost,
                "moq": item.moq,
                "order_multiple": item.order_multiple,
            },
        )
    return True
