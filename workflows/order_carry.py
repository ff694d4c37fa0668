"""An order that waits long for stock continues as new before its history passes a bound.

Why: every hourly re-check of a backorder adds ~7 events (~950 bytes) to the order's
history, and each backorder_aging question a dozen more: ~170 events a day, ~5,000 a month,
and the server terminates a run at 51,200 events. Long before that, every time a woken
order is not in the worker's cache its whole history is replayed, so a stock arrival that
wakes 10,000 old backorders replays all of them (docs/scaling.md has the numbers).

The bound is checked where the order waits for stock (the only wait whose history grows
with time: holds and decisions end at their escalation limit) and only at rest: no step in
flight, no warehouse update running, no exception open. The new run starts in `fulfil`
with the carried state; the step counter carries on, so step keys (and with them
reservations and charges) and exception keys never repeat."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import OrderCarry, OrderInput
    from workflows.order_messages import OrderState

# ~6 days of hourly re-checks; a normal order's whole life is ~35 events.
HISTORY_EVENTS_BOUND = 1_000
HISTORY_BYTES_BOUND = 512 * 1024
PATCH = "continue-long-wait"


def past_bound() -> bool:
    info = workflow.info()
    return (
        info.get_current_history_length() >= HISTORY_EVENTS_BOUND
        or info.get_current_history_size() >= HISTORY_BYTES_BOUND
        or info.is_continue_as_new_suggested()
    )


def carried_input(inp: OrderInput, state: OrderState) -> OrderInput:
    assert state.order is not None and not state.busy
    since = state.backorder_since.isoformat() if state.backorder_since else None
    carry = OrderCarry(
        order=state.order,
        steps_named=state.steps_named,
        closed_by_last_step=state.closed_by_last_step,
        backorder_since=since,
        stock_news=state.stock_news,
        needs_sourcing=state.needs_sourcing,
        unfillable=dict(state.unfillable),
        avoid=list(state.avoid),
        runs=inp.carried.runs + 1 if inp.carried else 1,
    )
    return dataclasses.replace(inp, carried=carry)


def restored_state(carry: OrderCarry) -> OrderState:
    return OrderState(
        order=carry.order,
        steps_named=carry.steps_named,
        stock_news=carry.stock_news,
        needs_sourcing=carry.needs_sourcing,
        unfillable=dict(carry.unfillable or {}),
        avoid=list(carry.avoid or []),
        backorder_since=datetime.fromisoformat(carry.backorder_since) if carry.backorder_since else None,
        closed_by_last_step=carry.closed_by_last_step,
    )
