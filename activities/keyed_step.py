"""What the keyed steps of the purchase-order and the return activities share
(activities.po_step, activities.return_step): one transaction under the step's key
(`po-7:receive:R1`), the stock moves keyed under it, and the audit row of a step a person
asked for, written with models.audit in that same transaction, with the object as the step
found it (`before`) and as it answers it (`after`); the step's transaction itself, counted
(activities.metrics)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.errors import business_outcomes
from activities.metrics import StepRun, counted_step
from domain.audit import Actor
from models import audit as trail
from models import stock

T = TypeVar("T")


@asynccontextmanager
async def step_transaction(
    engine: AsyncEngine, process: str, step: str
) -> AsyncIterator[tuple[AsyncConnection, StepRun]]:
    """A keyed step's transaction, counted, its domain refusals leaving as business outcomes."""
    async with counted_step(process, step) as run, business_outcomes(), engine.begin() as conn:
        yield conn, run


class KeyedStep:
    conn: AsyncConnection
    key: str
    done: dict[str, Any] | None  # the step's recorded event detail, when it has run before
    before: Any
    audit_type: ClassVar[str]  # the object's type in the trail: purchase_order, return
    stock_kind: ClassVar[str]  # the movement kind of its stock moves: purchasing, returns

    @property
    def number(self) -> str:
        raise NotImplementedError

    @property
    def ref(self) -> str:
        raise NotImplementedError

    async def move(self, step: str, moves: list[stock.Move], reason: str) -> None:
        """Stock moves of this step, keyed under it (once, however often the step runs)."""
        if moves:
            await stock.apply_moves(
                self.conn, f"{self.key}:{step}", self.stock_kind, moves, reason=reason, ref=self.ref
            )

    async def audited_as(self, actor: Actor | None, action: str, after: T) -> T:
        """`after`, with a person's row beside it when this run carried the step out (a step
        that had run answers as it did, and its row is there already)."""
        if self.done is None:
            obj = trail.AuditObject(self.audit_type, self.number)
            await trail.step(self.conn, actor, action, obj, self.key, before=self.before, after=after)
        return after
