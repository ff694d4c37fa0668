"""The warehouse's step routes (pick, pack, ship a shipment) as updates of the shipment's
order workflow, and how a step whose update was lost is caught up with."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from api.problems import Problem, not_found
from api.process_steps import ProcessSteps
from api.read_models.shipments import shipment
from api.schemas_orders import ShipmentRead
from api.temporal import WorkflowNotRunning
from domain import fulfilment
from domain.audit import Actor
from workflows.contracts import (
    OrderSnapshot,
    PackageIn,
    PackRequest,
    PickedLine,
    PickRequest,
    ShipmentAnswer,
    shipment_order_id,
)

log = structlog.get_logger("omniflow.api.shipment_steps")


@dataclass
class ShipmentSteps(ProcessSteps):
    """A shipment's step routes, without a read of the database: the shipment's id names its
    order, whose workflow takes the update and answers the shipment as the step left it.
    The roles these routes admit (warehouse, admin) see every channel, so existence is all
    there is to check, and the workflow does: a shipment it does not hold is refused as not
    found (404), and an order it does not know (the engine finds no workflow) is looked up
    then, to tell "finished" (409) from "no such shipment" (404).

    A step commits inside the workflow task that runs its update: if the worker or the
    engine dies before that task completes, the step is in the database but its update was
    never accepted, so the workflow still sees the shipment as it was and refuses the next
    step (409). A refused step therefore looks at the database: the steps before it that
    the shipment has been through are sent again as recorded (each finds itself done and
    answers what it answered, and the workflow applies it as it would have), and if one of
    them was news to the workflow, the step is asked once more (docs/architecture.md,
    *A step whose update was lost*)."""

    async def take(self, shipment_id: str, name: str, arg: object) -> ShipmentRead:
        order_id = shipment_order_id(shipment_id)
        if order_id is None:
            raise not_found(f"shipment {shipment_id}")
        try:
            answer = await self._send(order_id, name, arg)
        except WorkflowNotRunning:
            await shipment(self.engine, shipment_id, self.who)  # 404 unless it exists
            raise
        except Problem as problem:
            if problem.status_code == 404:  # the order's workflow holds no such shipment
                raise not_found(f"shipment {shipment_id}") from problem
            if problem.status_code != 409 or not await self._catch_up(order_id, shipment_id, name):
                raise
            answer = await self._send(order_id, name, arg)
        if isinstance(answer, ShipmentAnswer):
            times = {k: _at(getattr(answer, k)) for k in ("created_at", "updated_at", "shipped_at")}
            return ShipmentRead.model_validate({**asdict(answer), **times, "order_id": order_id})
        # An update that completed before updates answered the shipment, asked again under
        # the same Idempotency-Key: its recorded answer is the order.
        return await shipment(self.engine, shipment_id)

    async def _send(self, order_id: str, name: str, arg: object, update_id: str | None = None) -> Any:
        return await self.send(
            order_id, name, arg, workflow="Order", result_type=ANSWERS, update_id=update_id
        )

    async def _catch_up(self, order_id: str, shipment_id: str, name: str) -> bool:
        """Send the workflow the steps before `name` the database has recorded for this
        shipment; True if it did not have one of them. Each goes under an id of its own
        (`pick-as-recorded-…`), so two requests catching up at once send it once."""
        read = await shipment(self.engine, shipment_id)
        news = False
        for step in fulfilment.steps_before(read.kind, read.status, name):
            try:
                await self._send(
                    order_id, step, _as_recorded(read, step, self.actor), f"{step}-as-recorded-{shipment_id}"
                )
            except Problem as problem:
                if problem.status_code != 409:
                    raise
                continue  # the workflow has this one
            log.info("workflow caught up with a recorded step", shipment_id=shipment_id, step=step)
            news = True
        return news


def _as_recorded(read: ShipmentRead, step: str, actor: Actor) -> PickRequest | PackRequest:
    """The request of a step the shipment has been through, rebuilt from what it recorded
    (its activity finds the step done and answers from its record, whatever the request):
    a pick or a pack, the steps that come before another."""
    if step == "pick":
        return PickRequest(read.id, [PickedLine(ln.sku, ln.picked) for ln in read.lines], actor=actor)
    packages = [PackageIn(**pkg) for pkg in read.packages]
    return PackRequest(read.id, packages, read.service or "ground", actor)


def _at(micros: int | None) -> datetime | None:
    """A time the update answers in microseconds since the epoch, exactly (no float)."""
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What an order's warehouse update answers: the shipment; updates recorded before that
# answered the whole order.
ANSWERS = ShipmentAnswer | OrderSnapshot | None
