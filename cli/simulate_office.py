"""The back office `omniflow simulate` plays: the approver desk, which works this run's open
exceptions (answering what the plan says it answers, some only once they escalated, and
letting the rest run past their SLA to their default action), and the purchasing office with
its suppliers (a PO placed, approved or not, confirmed after the supplier's delay, received,
sometimes with damaged units). The conventions are cli/simulate_actors.py's."""

from __future__ import annotations

from typing import Any

import httpx

from cli.simulate_actors import ADDRESSES, Run
from cli.simulate_plan import Decision, PoStory, decide
from client import (
    ApiError,
    AsyncOmniflowClient,
    ConfirmedLine,
    ExceptionItem,
    NewPoLine,
    NewPurchaseOrder,
    ReceiptLine,
)

# The kinds a warehouse key decides (the approver's role may not); the desk holds both keys.
WAREHOUSE_KINDS = frozenset({"short_pick"})


class Desk:
    """The approver desk: every second it reads the open exceptions, keeps those of this run,
    and answers each the plan answers once it has reached the plan's escalation level and the
    desk has thought about it; `seen` and `escalated` are what it saw open."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.first_seen: dict[str, float] = {}
        self.escalated: set[str] = set()
        self.done: set[str] = set()

    async def loop(self, every: float = 1.0) -> None:
        run = self.run
        while run.clock.running():
            for item in await self._open():
                await self._consider(item)
            await run.clock.until(run.clock.now() + every)

    async def _open(self) -> list[ExceptionItem]:
        found: list[ExceptionItem] = []
        try:
            async for item in self.run.cast.approver.iter_exceptions(
                status="open", sort="opened_at", limit=500
            ):
                if self.run.tag in item.subject.id:
                    found.append(item)
        except (ApiError, httpx.TransportError):
            pass
        return found

    async def _consider(self, item: ExceptionItem) -> None:
        run, now = self.run, self.run.clock.now()
        if item.id not in self.first_seen:
            self.first_seen[item.id] = now
            run.tally[f"seen:{item.kind}"] += 1
        if item.escalation_level > 0 and item.id not in self.escalated:
            self.escalated.add(item.id)
            run.tally[f"escalated:{item.kind}"] += 1
        decision = decide(run.plan, item.kind, item.subject.id)
        if item.id in self.done or decision is None or decision.action not in item.actions:
            return
        if item.escalation_level < decision.escalations or now < self.first_seen[item.id] + decision.think:
            return
        self.done.add(item.id)
        key = run.cast.warehouse if item.kind in WAREHOUSE_KINDS else run.cast.approver
        await run.act(
            f"decided:{item.kind}",
            key.resolve_exception,
            item.id,
            decision.action,
            note="omniflow simulate",
            data=self._data(item, decision),
            idempotency_key=f"{item.id}:decide",
        )

    def _data(self, item: ExceptionItem, decision: Decision) -> dict[str, Any]:
        """What the action takes: a good address, or the payment of the order's total."""
        if decision.action == "fix_address":
            return {"ship_to": ADDRESSES[0].to_json()}
        if decision.action == "confirm_payment":
            story = self.run.stories[item.subject.id]
            return {"status": "authorized", "amount": story.total, "reference": f"psp-{item.subject.id}-paid"}
        return {}


# -- purchasing ------------------------------------------------------------------------------


def po_number(run: Run, story: PoStory) -> str:
    return f"{run.tag}-P{story.number:03d}"


async def purchase_story(run: Run, story: PoStory) -> None:
    """A buyer (the approver key) places the PO; once it is sent (approved, or under the
    threshold) the supplier confirms it after its delay, and the warehouse receives it."""
    if not await run.clock.until(story.at):
        return
    number, cast = po_number(run, story), run.cast
    po = NewPurchaseOrder(
        number=number,
        supplier=story.supplier,
        location=story.location,
        lines=[NewPoLine(sku=story.sku, qty=story.qty)],
    )
    if await run.act("po_created", cast.approver.create_purchase_order, po, idempotency_key=number) is None:
        return
    sent = await run.poll(
        lambda: cast.admin.get_purchase_order(number),
        lambda p: p.status not in ("draft", "awaiting_approval"),
    )
    if sent is None or sent.status != "sent":
        return  # rejected, or the run ended while it waited for approval
    await _supplier_and_dock(run, story, number, cast.admin, cast.warehouse)


async def _supplier_and_dock(
    run: Run, story: PoStory, number: str, supplier: AsyncOmniflowClient, dock: AsyncOmniflowClient
) -> None:
    if not await run.clock.until(run.clock.now() + story.confirm_after):
        return
    confirmed = [ConfirmedLine(sku=story.sku, qty=story.qty)]
    key = f"{number}:confirm"
    if (
        await run.act("po_confirmed", supplier.confirm_purchase_order, number, confirmed, idempotency_key=key)
        is None
    ):
        return
    if not await run.clock.until(run.clock.now() + story.receive_after):
        return
    receipt = f"{number}-G1"
    lines = [ReceiptLine(sku=story.sku, qty_received=story.qty - story.damaged, qty_damaged=story.damaged)]
    await run.act(
        "po_received",
        dock.receive_purchase_order,
        number,
        receipt,
        lines,
        final=True,
        idempotency_key=f"{number}:receive",
    )
