"""The returns API's read model: a return with its lines, refunds, open exceptions and
timeline; the page of them; return reasons; a customer's store credit. A channel key sees
its own channel's returns and customers only: anything else is a 404, as if it did not exist."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.auth import Principal, Role, see
from api.problems import not_found
from api.schemas_orders import HoldRead, TimelineEvent
from api.schemas_returns import ReasonRead, ReturnLineRead, ReturnRead, StoreCreditEntryRead, StoreCreditRead
from models import return_store as store
from workflows.contracts import return_workflow_id

_HEAD = text("SELECT * FROM sales_return WHERE number = :number")
_HOLDS = text(
    "SELECT id AS exception_id, kind, status, opened_at, due_at, escalation_level, actions FROM exception"
    " WHERE subject_type = 'return' AND subject_id = :number AND status = 'open' ORDER BY opened_at, id"
)
_TIMELINE = text("SELECT event, detail, at FROM return_event WHERE return_number = :number ORDER BY id")
REFUNDED = "refunded"  # the timeline event of a refund; its detail has the amount


async def read_return_in(
    conn: AsyncConnection, number: str, principal: Principal | None = None
) -> ReturnRead:
    head = (await conn.execute(_HEAD, {"number": number})).first()
    see(principal, head.channel if head is not None else None, f"return {number}")
    assert head is not None
    params = {"number": number}
    timeline = [TimelineEvent.model_validate(r._mapping) for r in await conn.execute(_TIMELINE, params)]
    return ReturnRead(
        **dict(head._mapping),
        id=number,
        order=head.order_id,
        exchange_order=head.new_order,
        workflow_id=return_workflow_id(number),
        lines=[ReturnLineRead.model_validate(r._mapping) for r in await store.lines(conn, number)],
        refunds=[{**e.detail, "at": e.at} for e in timeline if e.event == REFUNDED],
        holds=[HoldRead.model_validate(r._mapping) for r in await conn.execute(_HOLDS, params)],
        timeline=timeline,
    )


async def read_return(engine: AsyncEngine, number: str, principal: Principal | None = None) -> ReturnRead:
    """One return; 404 if there is none or it is another channel's than the caller's."""
    async with engine.connect() as conn:
        return await read_return_in(conn, number, principal)


@dataclass(frozen=True)
class ReturnFilter:
    """The list's filters; None = any."""

    status: str | None = None
    order: str | None = None
    outcome: str | None = None
    channel: str | None = None


async def return_numbers_after(engine: AsyncEngine, after: str, where: ReturnFilter, limit: int) -> list[str]:
    """Up to limit + 1 numbers after `after`, in order (the extra one says there is a next page)."""
    sql = text(
        "SELECT number FROM sales_return WHERE number > :after"
        " AND (CAST(:status AS varchar) IS NULL OR status = :status)"
        " AND (CAST(:order_id AS varchar) IS NULL OR order_id = :order_id)"
        " AND (CAST(:outcome AS varchar) IS NULL OR outcome = :outcome)"
        " AND (CAST(:channel AS varchar) IS NULL OR channel = :channel) ORDER BY number LIMIT :limit"
    )
    params = {"after": after, "status": where.status, "order_id": where.order, "outcome": where.outcome,
              "channel": where.channel, "limit": limit + 1}  # fmt: skip # kept aligned: the filters in order
    async with engine.connect() as conn:
        return list((await conn.execute(sql, params)).scalars())


async def read_reasons(conn: AsyncConnection) -> list[ReasonRead]:
    return [ReasonRead.model_validate(r.__dict__) for r in (await store.reasons(conn)).values()]


async def read_store_credit(engine: AsyncEngine, customer_id: str, principal: Principal) -> StoreCreditRead:
    """A customer's balance and entries (newest first); 404 for a channel key unless the
    customer has an order in its channel."""
    async with engine.connect() as conn:
        if principal.role is Role.channel:
            seen = text("SELECT 1 FROM sales_order WHERE customer_id = :c AND channel = :ch LIMIT 1")
            if (await conn.execute(seen, {"c": customer_id, "ch": principal.channel})).first() is None:
                raise not_found(f"customer {customer_id}")
        balance = await store.credit_balance(conn, customer_id)
        entries = await store.credit_entries(conn, customer_id)
    return StoreCreditRead(
        customer_id=customer_id,
        balance=balance,
        currency=entries[0].currency if entries else "USD",
        entries=[StoreCreditEntryRead.model_validate(r._mapping) for r in entries],
    )
