"""Order `order-{channel}-{external_id}`: received → holds → source and reserve → (wait for
stock) → per shipment pick → pack → ship (capture and post) → completed. Cancel at any point
before the last unit ships.

The workflow decides; activities (activities/orders.py) do each step in one transaction and
answer the order as it now stands (`OrderSnapshot`), which the update validators check, so a
wrong state is refused at once (409) and wrong quantities are refused (422) before any work.

Every step that changes the order runs under one lock: warehouse updates, cancels and the
main loop never interleave their activities, so each sees the previous one's result."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import holds as hold_rules
    from domain import waves
    from workflows import search_attributes as sa
    from workflows.contracts import (
        CancelRequest,
        HoldSettled,
        LineSnap,
        OpenException,
        OrderInput,
        OrderSnapshot,
        PackRequest,
        PaymentConfirmation,
        Picked,
        PickRequest,
        Recorded,
        Resolution,
        ShipmentSnap,
        ShipRequest,
        ShipToFix,
        Sourced,
        StockArrived,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter
    from workflows.refusals import refusal

STEP_TIMEOUT = timedelta(seconds=60)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))

HOLD_ACTIONS = {kind: list(h.actions) for kind, h in hold_rules.HOLDS.items()}
BACKORDER_ACTIONS = ["keep_waiting", "cancel"]
SHORT_PICK_ACTIONS = ["backorder", "cancel"]
DONE = ("completed", "cancelled")


def _refuse(message: str, kind: str = "WrongState") -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn(name="Order")
class OrderWorkflow(AwaitsDecisions):
    def __init__(self) -> None:
        self.waiter = ExceptionWaiter()
        self.inp: OrderInput | None = None
        self.snap: OrderSnapshot | None = None
        self.lock = asyncio.Lock()
        self.counter = 0
        self.busy: set[str] = set()  # shipments with a warehouse step in flight
        self.stock_news = False
        self.needs_sourcing = False  # a short pick released units: source them again
        self.unfillable: dict[str, int] = {}
        self.hold: str = ""
        self.backorder_since: datetime | None = None
        self.avoid: list[str] = []  # locations whose shelves just came up short
        self.closed_by_last_step = False

    # -- the life of an order ---------------------------------------------------------

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderSnapshot:
        self.inp = inp
        workflow.upsert_search_attributes([sa.OMNI_CHANNEL.value_set(inp.channel)])
        # Decided once, in the first workflow task (a patch asked for the first time in a later
        # task that the worker replays is taken as absent).
        self.closed_by_last_step = workflow.patched("close-in-last-step")
        async with self.lock:  # shipments it makes are visible in the read model before we see them
            if workflow.patched("record-and-source"):  # an order nothing holds is sourced in the same step
                recorded: Recorded = await self._step(
                    "record_order", inp.order_id, self._next_step("source"), result_type=Recorded
                )
            else:
                recorded = await self._step("record_order", inp.order_id, result_type=Recorded)
        self._apply(recorded.snapshot)

        for i, kind in enumerate(recorded.holds):
            await self._hold(kind, recorded.hold_details.get(kind, {}), len(recorded.holds) - i - 1)
            if self._closed():
                return await self._finish()

        if recorded.release_at:
            release = datetime.fromisoformat(recorded.release_at)
            wait = (release - workflow.now()).total_seconds()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(self._closed, timeout=timedelta(seconds=wait))
        if not self._closed():
            if recorded.sourced is not None:
                await self._sourced(recorded.sourced)
            else:
                await self._source()

        while not self._finished():
            await self._next()
        return await self._finish()

    async def _next(self) -> None:
        """One turn of the main loop: re-source what a short pick released, decide what
        cannot be filled, or wait (for the warehouse, stock, a cancel or the backorder age)."""
        assert self.inp is not None
        if self.needs_sourcing:
            self.needs_sourcing = False
            await self._source()
            self.avoid = []  # only the re-source right after a short pick stays away; later checks see all
            return
        if self.unfillable:
            await self._short_pick_decision()
            return
        if self._backordered() > 0:
            await self._await_stock()
            return
        await workflow.wait_condition(
            lambda: (
                self._finished() or self.needs_sourcing or bool(self.unfillable) or self._backordered() > 0
            )
        )

    async def _finish(self) -> OrderSnapshot:
        await workflow.wait_condition(lambda: not self.busy and not self.lock.locked())
        assert self.inp is not None and self.snap is not None
        snap = self.snap
        # The step that shipped or cancelled the last unit closed the order in its own
        # transaction; runs from before that change close it with one more step.
        if not (self.closed_by_last_step and snap.status in DONE):
            async with self.lock:
                snap = await self._step("complete_order", self.inp.order_id, result_type=OrderSnapshot)
                self._apply(snap)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return snap

    # -- holds ------------------------------------------------------------------------

    async def _hold(self, kind: str, details: dict[str, object], holds_after: int) -> None:
        assert self.inp is not None
        attempt = 0
        while not self._closed():
            attempt += 1
            self.hold = kind
            check = self._check_address if kind == "address_invalid" else (
                self._check_payment if kind == "payment_pending" else None)  # fmt: skip
            resolution = await self.waiter.wait(
                self._exception(kind, f"hold:{kind}:{attempt}", HOLD_ACTIONS[kind], details),
                self.inp.policies[kind],
                interrupt=self._closed,
                check=check,
            )
            if resolution is None:  # cancelled meanwhile: the cancel closed the row
                self.waiter.closed()
                break
            if resolution.action == "cancel":
                await self._cancel_now(CancelRequest(reason=f"{kind}: {resolution.note or 'cancelled'}",
                                                     requested_by=resolution.resolved_by), resolution.exception_id)  # fmt: skip
                self.waiter.closed()
                break
            async with self.lock:
                settled: HoldSettled = await self._step(
                    "settle_hold", self.inp.order_id, kind, resolution, holds_after, result_type=HoldSettled
                )
                self._apply(settled.snapshot)
            self.waiter.closed()
            if settled.cleared:
                break
            details = {**details, "previous_attempt": settled.note}
        self.hold = ""

    def _check_address(self, resolution: Resolution) -> None:
        if resolution.action != "fix_address":
            return
        ship_to = (resolution.data or {}).get("ship_to")
        if not isinstance(ship_to, dict):
            raise _refuse("fix_address needs data.ship_to (or use PATCH /v1/orders/{id}/ship-to)", "Invalid")
        try:
            address = hold_rules.address_from(ship_to)
        except (TypeError, ValueError) as exc:
            raise _refuse(f"ship_to is not an address: {exc}", "Invalid") from exc
        problems = hold_rules.validate_address(address)
        if problems:
            raise ApplicationError(
                "the address still has problems: " + "; ".join(p.message for p in problems),
                {"problems": [{"field": p.field, "problem": p.problem, "message": p.message} for p in problems]},
                type="Invalid", non_retryable=True,
            )  # fmt: skip

    def _check_payment(self, resolution: Resolution) -> None:
        if resolution.action != "confirm_payment":
            return
        data = resolution.data or {}
        if data.get("status") not in ("authorized", "captured"):
            raise _refuse("confirm_payment needs data.status authorized or captured", "Invalid")
        amount = data.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            raise _refuse("confirm_payment needs a positive integer data.amount", "Invalid")

    # -- sourcing and backorders --------------------------------------------------------

    async def _source(self) -> None:
        assert self.inp is not None
        async with self.lock:
            sourced: Sourced = await self._step(
                "source_order", self.inp.order_id, self._next_step("source"), self.avoid, result_type=Sourced
            )
            self._apply(sourced.snapshot)
        await self._sourced(sourced)

    async def _sourced(self, sourced: Sourced) -> None:
        self.stock_news = False
        if sourced.unfillable:
            if any(s.status in ("picked", "packed", "shipped") for s in sourced.snapshot.shipments):
                self.unfillable = dict(sourced.unfillable)  # a short pick nobody can refill: a person decides
            else:
                await self._cancel_now(CancelRequest(reason="out of stock and the order allows no backorder",
                                                     lines=dict(sourced.unfillable), requested_by="system:sourcing"))  # fmt: skip

    async def _await_stock(self) -> None:
        """Wait for stock news (a signal from the backorder dispatcher) or the periodic
        re-check; past the aging limit a person is asked whether to keep waiting."""
        assert self.inp is not None
        if self.backorder_since is None:
            self.backorder_since = workflow.now()

        def woken() -> bool:
            return self.stock_news or self.needs_sourcing or self._finished() or self._backordered() == 0

        aging = timedelta(seconds=self.inp.backorder_aging_seconds)
        recheck = timedelta(seconds=self.inp.backorder_recheck_seconds)
        while not woken():
            left = aging - (workflow.now() - self.backorder_since)
            try:
                await workflow.wait_condition(woken, timeout=max(min(recheck, left), timedelta(seconds=1)))
            except TimeoutError:
                if workflow.now() - self.backorder_since < aging:
                    break  # the periodic re-check
                resolution = await self.waiter.wait(
                    self._exception("backorder_aging", self._next_step("backorder_aging"), BACKORDER_ACTIONS,
                                    {"backordered_units": self._backordered()}),
                    self.inp.policies["backorder_aging"],
                    interrupt=woken,
                )  # fmt: skip
                if resolution is None:
                    await self._step("withdraw_exception", self.waiter.open.id if self.waiter.open else "",
                                     "stock arrived or the order changed", result_type=None)  # fmt: skip
                    self.waiter.closed()
                    break
                if resolution.action == "cancel":
                    lines = {ln.line: ln.backordered for ln in self._lines() if ln.backordered > 0}
                    await self._cancel_now(CancelRequest(reason="backorder aged out", lines=lines or None,
                                                         requested_by=resolution.resolved_by), resolution.exception_id)  # fmt: skip
                else:
                    await self._step("close_exception", resolution, result_type=None)
                self.waiter.closed()
                self.backorder_since = workflow.now()  # asked and answered: the age starts again
        if not self._finished() and self._backordered() > 0:
            await self._source()

    async def _short_pick_decision(self) -> None:
        assert self.inp is not None
        short, self.unfillable = self.unfillable, {}
        resolution = await self.waiter.wait(
            self._exception(
                "short_pick", self._next_step("short_pick"), SHORT_PICK_ACTIONS, {"lines": short}
            ),
            self.inp.policies["short_pick"],
            interrupt=self._finished,
        )
        if resolution is None:
            await self._step("withdraw_exception", self.waiter.open.id if self.waiter.open else "",
                             "the order changed", result_type=None)  # fmt: skip
        elif resolution.action == "backorder":
            async with self.lock:
                snap = await self._step("backorder_units", self.inp.order_id, self._next_step("backorder"),
                                        resolution.resolved_by, result_type=OrderSnapshot)  # fmt: skip
                self._apply(snap)
            await self._step("close_exception", resolution, result_type=None)
        else:
            open_lines = {line: n for line, n in short.items() if n > 0}
            await self._cancel_now(CancelRequest(reason="short pick", lines=open_lines or None,
                                                 requested_by=resolution.resolved_by), resolution.exception_id)  # fmt: skip
        self.waiter.closed()

    @workflow.signal
    def stock_arrived(self, news: StockArrived) -> None:
        self.stock_news = True

    # -- cancel -----------------------------------------------------------------------

    async def _cancel_now(self, req: CancelRequest, exception_id: str = "") -> OrderSnapshot:
        assert self.inp is not None
        async with self.lock:
            snap: OrderSnapshot = await self._step(
                "cancel_order", self.inp.order_id, req, self._next_step("cancel"), exception_id,
                result_type=OrderSnapshot,
            )  # fmt: skip
            self._apply(snap)
        return snap

    @workflow.update
    async def cancel(self, req: CancelRequest) -> OrderSnapshot:
        await workflow.wait_condition(lambda: self.snap is not None)
        try:
            return await self._cancel_now(req)
        except ActivityError as err:
            raise refusal(err) from err

    @cancel.validator
    def _can_cancel(self, req: CancelRequest) -> None:
        if self.snap is None:
            return  # still being recorded: the handler waits for it
        if self._finished():
            raise _refuse(f"order {self.snap.order_id} is {self.snap.status}: nothing left to cancel")
        open_units = {ln.line: ln.ordered - ln.shipped - ln.cancelled for ln in self.snap.lines}
        for line, n in (req.lines or {}).items():
            if line not in open_units:
                raise _refuse(f"the order has no line {line}", "Invalid")
            if n <= 0:
                raise _refuse(f"line {line}: cancel a positive quantity", "Invalid")
            if n > open_units[line]:
                raise _refuse(
                    f"line {line} has {open_units[line]} units left to cancel (the rest shipped or is cancelled)"
                )

    # -- customer service ---------------------------------------------------------------

    @workflow.update
    async def fix_ship_to(self, fix: ShipToFix) -> OrderSnapshot:
        assert self.waiter.open is not None
        self.waiter.offer(Resolution(self.waiter.open.id, "fix_address", "address corrected", fix.fixed_by,
                                     {"ship_to": fix.ship_to}))  # fmt: skip
        await workflow.wait_condition(lambda: self.hold != "address_invalid" or self.waiter.open is None)
        assert self.snap is not None
        return self.snap

    @fix_ship_to.validator
    def _can_fix_ship_to(self, fix: ShipToFix) -> None:
        if self.hold != "address_invalid" or self.waiter.open is None:
            raise _refuse("the order is not on an address hold")
        self.waiter.validate(
            Resolution(self.waiter.open.id, "fix_address", "", fix.fixed_by, {"ship_to": fix.ship_to})
        )

    @workflow.update
    async def confirm_payment(self, pay: PaymentConfirmation) -> OrderSnapshot:
        assert self.waiter.open is not None
        self.waiter.offer(Resolution(self.waiter.open.id, "confirm_payment", "payment confirmed", pay.confirmed_by,
                                     {"status": pay.status, "amount": pay.amount, "reference": pay.reference,
                                      "method": pay.method}))  # fmt: skip
        await workflow.wait_condition(lambda: self.hold != "payment_pending" or self.waiter.open is None)
        assert self.snap is not None
        return self.snap

    @confirm_payment.validator
    def _can_confirm_payment(self, pay: PaymentConfirmation) -> None:
        if self.hold != "payment_pending" or self.waiter.open is None:
            raise _refuse("the order is not waiting for payment")
        self.waiter.validate(Resolution(self.waiter.open.id, "confirm_payment", "", pay.confirmed_by,
                                        {"status": pay.status, "amount": pay.amount}))  # fmt: skip

    # -- the warehouse ----------------------------------------------------------------

    async def _warehouse(
        self, shipment_id: str, activity: str, req: object, result_type: type, check: Callable[[Any], None]
    ) -> object:
        assert self.inp is not None
        if not self._known(shipment_id):
            # The read model showed the shipment before this workflow applied the step that
            # made it (validators cannot wait): wait for that step, then validate for real.
            await workflow.wait_condition(lambda: not self.lock.locked())
            check(req)
        self.busy.add(shipment_id)
        try:
            async with self.lock:
                result = await self._step(activity, self.inp.order_id, req, result_type=result_type)
        except ActivityError as err:
            raise refusal(err) from err
        finally:
            self.busy.discard(shipment_id)
        return result

    @workflow.update
    async def pick(self, req: PickRequest) -> OrderSnapshot:
        picked = await self._warehouse(req.shipment_id, "pick_shipment", req, Picked, self._can_pick)
        assert isinstance(picked, Picked)
        self._apply(picked.snapshot)
        if picked.short:
            location = self._find(req.shipment_id).location
            if location not in self.avoid:
                self.avoid.append(location)
            self.needs_sourcing = True
        return picked.snapshot

    @pick.validator
    def _can_pick(self, req: PickRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        shipment = self._expect(req.shipment_id, "allocated")
        if shipment.kind != "stock":
            raise _refuse(f"shipment {shipment.id} is drop-shipped by its supplier: nothing to pick")
        wanted: dict[str, int] = defaultdict(int)
        for ln in shipment.lines:
            wanted[ln.sku] += ln.qty
        picked: dict[str, int] = defaultdict(int)
        for p in req.lines:
            if p.sku not in wanted:
                raise _refuse(f"{p.sku} is not on shipment {shipment.id}", "Invalid")
            if p.qty < 0:
                raise _refuse(f"{p.sku}: a picked quantity is not negative", "Invalid")
            picked[p.sku] += p.qty
        for sku, n in wanted.items():
            if sku not in picked:
                raise _refuse(
                    f"report every SKU of the shipment: {sku} is missing (0 if none was found)", "Invalid"
                )
            if picked[sku] > n:
                raise _refuse(f"{sku}: picked {picked[sku]}, the shipment holds {n}", "Invalid")
        if req.short_reason not in ("missing", "damaged"):
            raise _refuse("short_reason is missing or damaged", "Invalid")

    @workflow.update
    async def pack(self, req: PackRequest) -> OrderSnapshot:
        snap = await self._warehouse(req.shipment_id, "pack_shipment", req, OrderSnapshot, self._can_pack)
        assert isinstance(snap, OrderSnapshot)
        self._apply(snap)
        return snap

    @pack.validator
    def _can_pack(self, req: PackRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        shipment = self._expect(req.shipment_id, "picked")
        limits = waves.CARRIER_LIMITS.get(req.service)
        if limits is None:
            raise _refuse(
                f"unknown service {req.service!r}; one of {sorted(waves.CARRIER_LIMITS)}", "Invalid"
            )
        picked: dict[str, int] = defaultdict(int)
        for ln in shipment.lines:
            picked[ln.sku] += ln.picked
        packages = [
            waves.Package(p.weight_g, p.length_mm, p.width_mm, p.height_mm, p.lines) for p in req.packages
        ]
        problems = waves.validate_pack({k: v for k, v in picked.items() if v}, packages, limits)
        if problems:
            raise ApplicationError("the packages do not match: " + "; ".join(problems), {"problems": problems},
                                   type="Invalid", non_retryable=True)  # fmt: skip

    @workflow.update
    async def ship(self, req: ShipRequest) -> OrderSnapshot:
        snap = await self._warehouse(req.shipment_id, "ship_shipment", req, OrderSnapshot, self._can_ship)
        assert isinstance(snap, OrderSnapshot)
        self._apply(snap)
        return snap

    @ship.validator
    def _can_ship(self, req: ShipRequest) -> None:
        if self._being_made(req.shipment_id):
            return  # checked by the handler once the step that makes it is applied
        shipment = self._find(req.shipment_id)
        self._expect(req.shipment_id, "packed" if shipment.kind == "stock" else "requested")
        if not req.carrier.strip():
            raise _refuse("name the carrier", "Invalid")

    @workflow.query
    def snapshot(self) -> OrderSnapshot | None:
        return self.snap

    # -- helpers ------------------------------------------------------------------------

    async def _step(self, activity: str, *args: object, result_type: type | None) -> Any:
        """Every order step is one short database transaction, idempotent by its key: a local
        activity (run by this worker inside the workflow task, recorded as a marker) is safe
        and saves the task-queue round trip and three history events per step. A crash
        mid-step re-runs it, which its key makes harmless. Runs recorded before this change
        keep regular activities (patch `local-steps`)."""
        if workflow.patched("local-steps"):
            return await workflow.execute_local_activity(
                activity, args=list(args), start_to_close_timeout=STEP_TIMEOUT, retry_policy=RETRY,
                result_type=result_type,
            )  # fmt: skip
        return await workflow.execute_activity(
            activity, args=list(args), start_to_close_timeout=STEP_TIMEOUT, retry_policy=RETRY,
            result_type=result_type,
        )  # fmt: skip

    def _next_step(self, name: str) -> str:
        self.counter += 1
        return f"{name}:{self.counter}"

    def _exception(
        self, kind: str, step: str, actions: list[str], details: dict[str, object]
    ) -> OpenException:
        assert self.inp is not None and self.snap is not None
        return OpenException(
            key=f"{self.inp.order_id}:{step}", kind=kind, subject_type="order", subject_id=self.inp.order_id,
            workflow_id=workflow.info().workflow_id, sla_seconds=self.inp.policies[kind].sla_seconds,
            value_at_risk=self.inp.value, actions=actions, details=details,
        )  # fmt: skip

    def _apply(self, snap: OrderSnapshot) -> None:
        self.snap = snap
        if not any(ln.backordered for ln in snap.lines):
            self.backorder_since = None
        workflow.upsert_search_attributes([sa.OMNI_STATUS.value_set(snap.status)])

    def _lines(self) -> list[LineSnap]:
        return list(self.snap.lines) if self.snap else []

    def _closed(self) -> bool:
        return self.snap is not None and self.snap.status in DONE

    def _finished(self) -> bool:
        """Every unit shipped or cancelled."""
        return self.snap is not None and all(
            ln.shipped + ln.cancelled >= ln.ordered for ln in self.snap.lines
        )

    def _backordered(self) -> int:
        return sum(ln.backordered for ln in self._lines())

    def _known(self, shipment_id: str) -> bool:
        return any(s.id == shipment_id for s in (self.snap.shipments if self.snap else []))

    def _being_made(self, shipment_id: str) -> bool:
        """Unknown here, but a step is running that may be creating it (sourcing)."""
        return not self._known(shipment_id) and self.lock.locked() and not self._finished()

    def _find(self, shipment_id: str) -> ShipmentSnap:
        for s in self.snap.shipments if self.snap else []:
            if s.id == shipment_id:
                return s
        raise _refuse(f"shipment {shipment_id} is not part of this order", "NotFound")

    def _expect(self, shipment_id: str, status: str) -> ShipmentSnap:
        shipment = self._find(shipment_id)
        if shipment_id in self.busy:
            raise _refuse(f"shipment {shipment_id} has a step in progress")
        if shipment.status != status:
            raise ApplicationError(
                f"shipment {shipment_id} is {shipment.status}, not {status}", {"shipment_status": shipment.status},
                type="WrongState", non_retryable=True,
            )  # fmt: skip
        return shipment
