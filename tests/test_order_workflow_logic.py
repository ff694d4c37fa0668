"""The order workflow's decisions alone: its activities replaced by small fakes registered
under the same names (as Temporal's samples do), with no database, on the time-skipping test
server. Each scenario runs in a fraction of a second; tests/test_order_workflow.py drives
every one of these paths again against the real activities and Postgres.

The fake warehouse keeps one order in memory and answers each step the way the real step
does (an `OrderSnapshot`; a warehouse step what it changed and its shipment), which is all
the workflow sees."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows import contracts as c
from workflows.keyed_steps import update_step_name
from workflows.order import OrderWorkflow

POLICY = c.ExceptionPolicyInput(sla_seconds=3600, max_escalations=1, default_action="cancel")
KINDS = ("address_invalid", "payment_pending", "fraud_review", "backorder_aging", "short_pick")


@dataclass
class FakeOrder:
    """One order of one line of `qty` units, and what each step did (in order)."""

    order_id: str
    qty: int = 2
    holds: list[str] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=lambda: {"DC-EAST": 2, "DC-WEST": 2})
    steps: list[str] = field(default_factory=list)
    exceptions: list[c.OpenException] = field(default_factory=list)
    line: c.LineSnap = field(init=False)
    shipments: list[c.ShipmentSnap] = field(default_factory=list)
    status: str = "received"

    def __post_init__(self) -> None:
        self.line = c.LineSnap("1", "TEE", self.qty)

    def snap(self) -> c.OrderSnapshot:
        return c.OrderSnapshot(self.order_id, self.status, [self.line], list(self.shipments), "authorized")

    def source(self, avoid: list[str]) -> c.Sourced:
        want = self.line.ordered - self.line.reserved - self.line.shipped - self.line.cancelled
        for location, units in self.stock.items():
            if location in avoid or want <= 0 or units < want:
                continue
            self.stock[location] -= want
            sid = f"{self.order_id}-S{len(self.shipments) + 1}"
            self.shipments.append(
                c.ShipmentSnap(sid, location, "stock", "allocated", [c.ShipmentLineSnap("1", "TEE", want)])
            )
            self.line = replace(self.line, reserved=self.line.reserved + want, backordered=0)
            self.status = "allocated"
            return c.Sourced(self.snap(), [sid], 0, {})
        if want > 0:
            self.line = replace(self.line, backordered=want)
            self.status = "awaiting_stock" if not self.line.reserved else self.status
        return c.Sourced(self.snap(), [], self.line.backordered, {})

    def change(self, sid: str) -> c.ShipmentStepped:
        """A warehouse step's answer: the order's status and line, and the shipment."""
        s = next(s for s in self.shipments if s.id == sid)
        at = 1_767_225_600_000_000  # 2026-01-01, in microseconds
        answer = c.ShipmentAnswer(
            s.id, s.location, s.kind, s.status, s.lines, "standard", None, None, None, None, [], at, at, None
        )
        return c.ShipmentStepped(self.status, [self.line], [], "authorized", answer)

    def set_shipment(self, sid: str, **change: Any) -> None:
        self.shipments = [replace(s, **change) if s.id == sid else s for s in self.shipments]

    def close_if_done(self) -> None:
        if self.line.shipped + self.line.cancelled >= self.line.ordered:
            self.status = "completed" if self.line.shipped else "cancelled"


class FakeSteps:
    """The order's activities, answering from a FakeOrder."""

    def __init__(self, order: FakeOrder) -> None:
        self.order = order

    @activity.defn(name=c.RECORD_ORDER.name)
    async def record_order(self, inp: c.RecordOrder) -> c.Recorded:
        self.order.steps.append("record")
        if self.order.holds:
            self.order.status = "on_hold"
            return c.Recorded(self.order.snap(), list(self.order.holds), {k: {} for k in self.order.holds})
        if inp.source_step:
            sourced = self.order.source([])
            return c.Recorded(self.order.snap(), [], {}, "", sourced=replace(sourced, snapshot=None))
        return c.Recorded(self.order.snap(), [], {})

    @activity.defn(name=c.SETTLE_HOLD.name)
    async def settle_hold(self, inp: c.SettleHold) -> c.HoldSettled:
        self.order.steps.append(f"settle:{inp.kind}:{inp.resolution.action}")
        self.order.status = "on_hold" if inp.holds_after else "received"
        return c.HoldSettled(self.order.snap(), cleared=True)

    @activity.defn(name=c.SOURCE_ORDER.name)
    async def source_order(self, inp: c.SourceOrder) -> c.Sourced:
        self.order.steps.append(f"{inp.step} avoid={inp.avoid}")
        return self.order.source(inp.avoid)

    @activity.defn(name=c.PICK_SHIPMENT.name)
    async def pick_shipment(self, inp: c.PickShipment) -> c.Picked:
        self.order.steps.append(f"pick {inp.request.shipment_id}")
        got = sum(p.qty for p in inp.request.lines)
        shipment = next(s for s in self.order.shipments if s.id == inp.request.shipment_id)
        short = shipment.lines[0].qty - got
        self.order.set_shipment(
            shipment.id,
            status="picked" if got else "cancelled",
            lines=[c.ShipmentLineSnap("1", "TEE", got, got)],
        )
        self.order.line = replace(self.order.line, reserved=self.order.line.reserved - short)
        self.order.status = "in_fulfillment"
        stepped = self.order.change(shipment.id)
        return c.Picked(stepped, {"1": short} if short else {}, stepped.shipment)

    @activity.defn(name=c.PACK_SHIPMENT.name)
    async def pack_shipment(self, inp: c.PackShipment) -> c.ShipmentStepped:
        self.order.steps.append(f"pack {inp.request.shipment_id}")
        self.order.set_shipment(inp.request.shipment_id, status="packed")
        return self.order.change(inp.request.shipment_id)

    @activity.defn(name=c.SHIP_SHIPMENT.name)
    async def ship_shipment(self, inp: c.ShipShipment) -> c.ShipmentStepped:
        self.order.steps.append(f"ship {inp.request.shipment_id}")
        shipment = next(s for s in self.order.shipments if s.id == inp.request.shipment_id)
        self.order.set_shipment(shipment.id, status="shipped")
        units = shipment.lines[0].qty
        self.order.line = replace(
            self.order.line,
            reserved=self.order.line.reserved - units,
            shipped=self.order.line.shipped + units,
        )
        self.order.status = "partially_shipped"
        self.order.close_if_done()
        return self.order.change(shipment.id)

    @activity.defn(name=c.CANCEL_ORDER.name)
    async def cancel_order(self, inp: c.CancelOrder) -> c.OrderSnapshot:
        self.order.steps.append(f"{inp.step} {inp.request.reason}")
        n = sum(
            (
                inp.request.lines
                or {"1": self.order.line.ordered - self.order.line.shipped - self.order.line.cancelled}
            ).values()
        )
        self.order.line = replace(
            self.order.line, cancelled=self.order.line.cancelled + n, reserved=0, backordered=0
        )
        self.order.shipments = [
            replace(s, status="cancelled") if s.status != "shipped" else s for s in self.order.shipments
        ]
        self.order.close_if_done()
        return self.order.snap()

    @activity.defn(name=c.COMPLETE_ORDER.name)
    async def complete_order(self, inp: c.CompleteOrder) -> c.OrderSnapshot:
        self.order.steps.append("complete")
        self.order.close_if_done()
        return self.order.snap()

    @activity.defn(name=c.BACKORDER_UNITS.name)
    async def backorder_units(self, inp: c.BackorderUnits) -> c.OrderSnapshot:
        self.order.steps.append(inp.step)
        return self.order.snap()

    @activity.defn(name=c.OPEN_EXCEPTION.name)
    async def open_exception(self, inp: c.OpenException) -> c.OpenedException:
        self.order.exceptions.append(inp)
        return c.OpenedException(f"exc-{len(self.order.exceptions)}", "2026-12-02T00:00:00+00:00", 1.0)

    @activity.defn(name=c.ESCALATE_EXCEPTION.name)
    async def escalate_exception(self, inp: c.Escalate) -> c.OpenedException:
        self.order.steps.append(f"escalate {inp.id}")
        return c.OpenedException(inp.id, "2026-12-02T01:00:00+00:00", 2.0)

    @activity.defn(name=c.CLOSE_EXCEPTION.name)
    async def close_exception(self, inp: c.Resolution) -> None:
        self.order.steps.append(f"close {inp.exception_id}")

    @activity.defn(name=c.WITHDRAW_EXCEPTION.name)
    async def withdraw_exception(self, inp: c.WithdrawException) -> None:
        self.order.steps.append(f"withdraw {inp.exception_id}")

    def all(self) -> list[Any]:
        return [
            self.record_order,
            self.settle_hold,
            self.source_order,
            self.pick_shipment,
            self.pack_shipment,
            self.ship_shipment,
            self.cancel_order,
            self.complete_order,
            self.backorder_units,
            self.open_exception,
            self.escalate_exception,
            self.close_exception,
            self.withdraw_exception,
        ]


async def start(client: Client, order: FakeOrder, task_queue: str) -> WorkflowHandle[Any, c.OrderSnapshot]:
    inp = c.OrderInput(order.order_id, "web", 4500, dict.fromkeys(KINDS, POLICY))
    return await client.start_workflow(OrderWorkflow.run, inp, id=order.order_id, task_queue=task_queue)


async def run_with(temporal_env: WorkflowEnvironment, order: FakeOrder) -> tuple[Worker, str]:
    task_queue = f"logic-{uuid.uuid4().hex[:8]}"
    return Worker(
        temporal_env.client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        activities=FakeSteps(order).all(),
    ), task_queue


async def snapshot_when(handle: WorkflowHandle[Any, Any], ready: Any) -> c.OrderSnapshot:
    for _ in range(200):
        snap = await handle.query(OrderWorkflow.snapshot)
        if snap is not None and ready(snap):
            return snap
        await asyncio.sleep(0.01)
    raise AssertionError("the order never got there")


async def decide(handle: WorkflowHandle[Any, Any], resolution: c.Resolution) -> None:
    """Resolve the exception once the workflow has it open (the fake opened the row before
    the workflow applied the answer: until then the waiter refuses with NotOpen)."""
    for _ in range(200):
        try:
            await handle.execute_update("resolve_exception", resolution)
            return
        except WorkflowUpdateFailedError as err:
            if getattr(err.cause, "type", None) != "NotOpen":
                raise
        await asyncio.sleep(0.01)
    raise AssertionError("the exception never opened")


def pick(sid: str, qty: int) -> c.PickRequest:
    return c.PickRequest(sid, [c.PickedLine("TEE", qty)])


PARCEL = c.PackRequest("", [c.PackageIn(500, 300, 200, 100, {"TEE": 2})])


async def test_an_order_nothing_holds_is_sourced_in_its_first_step_and_closed_by_its_last(
    temporal_env: WorkflowEnvironment,
) -> None:
    order = FakeOrder("order-web-L1")
    worker, tq = await run_with(temporal_env, order)
    async with worker:
        h = await start(temporal_env.client, order, tq)
        snap = await snapshot_when(h, lambda s: s.shipments)
        sid = snap.shipments[0].id
        await h.execute_update(OrderWorkflow.pick, pick(sid, 2))
        await h.execute_update(OrderWorkflow.pack, replace(PARCEL, shipment_id=sid))
        await h.execute_update(OrderWorkflow.ship, c.ShipRequest(sid, "UPS"))
        result = await h.result()
    assert result.status == "completed"
    assert order.steps == [
        "record",
        f"pick {sid}",
        f"pack {sid}",
        f"ship {sid}",
    ]  # no complete step: the ship closed it


async def test_the_validators_refuse_a_wrong_state_or_quantity_before_any_step(
    temporal_env: WorkflowEnvironment,
) -> None:
    order = FakeOrder("order-web-L2")
    worker, tq = await run_with(temporal_env, order)
    async with worker:
        h = await start(temporal_env.client, order, tq)
        sid = (await snapshot_when(h, lambda s: s.shipments)).shipments[0].id
        refusals = []
        updates: list[tuple[str, object]] = [
            ("ship", c.ShipRequest(sid, "UPS")),
            ("pick", pick(sid, 3)),
            ("pick", pick(f"{sid}-nope", 1)),
            ("cancel", c.CancelRequest("x", {"1": 5})),
            ("cancel", c.CancelRequest("x", {"9": 1})),
            ("fix_ship_to", c.ShipToFix({"name": "x"})),
        ]
        for update, arg in updates:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await h.execute_update(update, arg)
            refusals.append(getattr(refused.value.cause, "type", None))
        await h.execute_update(OrderWorkflow.cancel, c.CancelRequest("changed mind"), id="cancel-1")
        assert (await h.result()).status == "cancelled"
    assert refusals == ["WrongState", "Invalid", "NotFound", "WrongState", "Invalid", "WrongState"]
    # Refused updates did no work; the cancel is named by its update (workflows.keyed_steps).
    assert order.steps == ["record", f"{update_step_name('cancel', 'cancel-1')} changed mind"]


async def test_a_hold_waits_for_a_person_and_its_decision_is_carried_out(
    temporal_env: WorkflowEnvironment,
) -> None:
    order = FakeOrder("order-web-L3", holds=["fraud_review"])
    worker, tq = await run_with(temporal_env, order)
    async with worker:
        h = await start(temporal_env.client, order, tq)
        await snapshot_when(h, lambda s: s.status == "on_hold")
        await decide(h, c.Resolution("exc-1", "approve", "ok", "ana"))
        await snapshot_when(h, lambda s: s.shipments)
        assert order.steps == ["record", "settle:fraud_review:approve", "source:2 avoid=[]"]
        await h.execute_update(OrderWorkflow.cancel, c.CancelRequest("bye"))
        await h.result()
    assert order.exceptions[0].key == "order-web-L3:hold:fraud_review:1"


async def test_a_short_pick_is_sourced_again_away_from_the_short_shelf(
    temporal_env: WorkflowEnvironment,
) -> None:
    order = FakeOrder("order-web-L4")
    worker, tq = await run_with(temporal_env, order)
    async with worker:
        h = await start(temporal_env.client, order, tq)
        first = (await snapshot_when(h, lambda s: s.shipments)).shipments[0]
        await h.execute_update(OrderWorkflow.pick, pick(first.id, 0))
        snap = await snapshot_when(h, lambda s: len(s.shipments) == 2)
        second = snap.shipments[1]
        assert (first.location, second.location) == ("DC-EAST", "DC-WEST")
        await h.execute_update(OrderWorkflow.cancel, c.CancelRequest("enough"))
        await h.result()
    assert "source:2 avoid=['DC-EAST']" in order.steps


async def test_a_backorder_that_ages_asks_a_person_and_the_default_cancels(
    temporal_env: WorkflowEnvironment,
) -> None:
    order = FakeOrder("order-web-L5", stock={})
    worker, tq = await run_with(temporal_env, order)
    async with worker:
        inp = c.OrderInput(
            order.order_id,
            "web",
            4500,
            dict.fromkeys(KINDS, POLICY),
            backorder_aging_seconds=60,
            backorder_recheck_seconds=30,
        )
        h = await temporal_env.client.start_workflow(OrderWorkflow.run, inp, id=order.order_id, task_queue=tq)
        result = (
            await h.result()
        )  # time skips: re-checks, the aging exception, its SLA, one escalation, the default
    assert result.status == "cancelled"
    assert [e.kind for e in order.exceptions] == ["backorder_aging"]
    assert any(s.startswith("escalate") for s in order.steps)
    assert order.steps[-1].endswith("backorder aged out")
