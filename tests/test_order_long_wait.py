"""An order that waits long for stock continues as new before its history passes the bound
(workflows/order_carry.py), on the time-skipping test server with the real worker and
Postgres: the order then resumes its wait, is woken by stock and completes with one
reservation and one capture; its exception keys never repeat across runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from runtime.settings import Settings
from tests.factories import assert_inventory_clean, balance, receive
from tests.orders import fast_policy, fulfil, ledger, place_order, stocked_shop, until
from tests.test_replay import record_history
from worker import WORKFLOWS
from workflows.contracts import OrderInput, OrderSnapshot, StockArrived
from workflows.order_carry import HISTORY_BYTES_BOUND, HISTORY_EVENTS_BOUND

# timer started/fired, a workflow task (3), the sourcing marker (the status is unchanged, so no
# upsert since lean-commands; runs before it upserted it too: 7)
EVENTS_PER_RECHECK = 6


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    return await stocked_shop(engine)


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def _backorder(
    shop: AsyncEngine,
    env: WorkflowEnvironment,
    settings: Settings,
    external_id: str,
    qty: int,
    aging: int,
    recheck: int,
) -> WorkflowHandle[Any, Any]:
    """An order of COFFEE (none in stock) waiting for it; its aging question escalates once
    an hour later, then keeps waiting."""
    started = await place_order(
        shop,
        env.client,
        settings,
        external_id,
        [("COFFEE", qty, 900)],
        aging_seconds=aging,
        recheck_seconds=recheck,
        policies=fast_policy("backorder_aging", "keep_waiting", limit=1),
    )
    await until(started, lambda s: s.status == "awaiting_stock")
    return started


async def test_a_long_backorder_continues_as_new_then_is_woken_and_completes_once(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = temporal_env.client
    started = await _backorder(shop, temporal_env, settings, "LW-1", 3, 2 * 86_400, 4 * 3600)
    order = client.get_workflow_handle(started.id)  # the latest run, whichever it is
    first_run = started.result_run_id
    for _ in range(60):  # re-checks every 4 hours, a backorder_aging question every ~2 days
        await temporal_env.sleep(timedelta(hours=12))
        if (await order.describe()).run_id != first_run:
            break
    else:
        raise AssertionError("the wait never continued as new")
    asked = len(await _questions(shop, order.id))
    assert asked >= 2
    for _ in range(8):  # the next question is asked in the new run, under a key of its own
        await temporal_env.sleep(timedelta(hours=6))
        if len(await _questions(shop, order.id)) > asked:
            break
    else:
        raise AssertionError("the new run never asked its backorder_aging question")

    first = await client.get_workflow_handle(order.id, run_id=first_run).fetch_history()
    assert first.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert HISTORY_EVENTS_BOUND <= len(first.events) <= HISTORY_EVENTS_BOUND + 3 * EVENTS_PER_RECHECK
    assert sum(e.ByteSize() for e in first.events) < HISTORY_BYTES_BOUND
    await Replayer(workflows=WORKFLOWS).replay_workflow(first)  # the run that continued replays

    latest = await order.fetch_history()
    carried: OrderInput = client.data_converter.payload_converter.from_payloads(
        latest.events[0].workflow_execution_started_event_attributes.input.payloads, [OrderInput]
    )[0]
    assert carried.carried is not None and carried.carried.steps_named > 1
    assert carried.carried.order.lines[0].backordered == 3

    await receive(shop, "COFFEE", "DC-EAST", 3, lot="L1")
    await order.signal("stock_arrived", StockArrived(["COFFEE"]))
    snap = await until(order, lambda s: s.status == "allocated")
    assert snap.lines[0].reserved == 3 and len(snap.shipments) == 1
    assert await balance(shop, "COFFEE", "DC-EAST", lot="L1") == (3, 3)
    await fulfil(order, snap.shipments[0].id)
    result = await client.get_workflow_handle(order.id, result_type=OrderSnapshot).result()
    assert (result.status, result.payment_status) == ("completed", "captured")
    await record_history(client, order.id, "order-backorder-continued-as-new")

    books = await ledger(shop, order.id)
    assert books["1000"] == 3 * 900 + 500 and books["4000"] == -3 * 900  # captured once
    captures = await _rows(
        shop,
        "SELECT o.key FROM payment_operation o JOIN payment p ON p.id = o.payment_id"
        " WHERE p.ref = :r AND o.kind = 'capture'",
        r=order.id,
    )
    assert len(captures) == 1
    questions = await _questions(shop, order.id)
    assert len({q.key for q in questions}) == len(questions) > asked
    assert int(questions[-1].key.rsplit(":", 1)[1]) > carried.carried.steps_named  # asked by the new run
    assert {q.status for q in questions} <= {"resolved", "cancelled"}  # none left open
    await assert_inventory_clean(shop)


async def _questions(engine: AsyncEngine, order_id: str) -> list[Any]:
    return await _rows(
        engine,
        "SELECT key, status FROM exception WHERE subject_id = :o AND kind = 'backorder_aging' ORDER BY opened_at",
        o=order_id,
    )


def test_the_recorded_run_after_a_continue_as_new_starts_from_the_carried_state() -> None:
    from tests.test_replay import HISTORIES

    history = WorkflowHistory.from_json(
        "order-backorder-continued-as-new",
        (HISTORIES / "order-backorder-continued-as-new.json").read_text(),
    )
    start = history.events[0].workflow_execution_started_event_attributes
    assert start.continued_execution_run_id, "the recording is of the run after a continue-as-new"
    assert len(history.events) < 200


async def test_a_backorder_that_is_only_asked_again_and_again_continues_as_new_too(
    shop: AsyncEngine, temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    """Re-check no sooner than the aging question: the wait never leaves the question loop."""
    client = temporal_env.client
    started = await _backorder(shop, temporal_env, settings, "LW-2", 1, 86_400, 86_400)
    order = client.get_workflow_handle(started.id)
    for _ in range(80):  # ~30 events a question, one a day
        await temporal_env.sleep(timedelta(days=1))
        if (await order.describe()).run_id != started.result_run_id:
            break
    else:
        raise AssertionError("the wait never continued as new")
    first = await client.get_workflow_handle(order.id, run_id=started.result_run_id).fetch_history()
    assert HISTORY_EVENTS_BOUND <= len(first.events) <= HISTORY_EVENTS_BOUND + 60
    await receive(shop, "COFFEE", "DC-EAST", 1, lot="L2")
    await order.signal("stock_arrived", StockArrived(["COFFEE"]))
    snap = await until(order, lambda s: s.status == "allocated")
    assert snap.lines[0].reserved == 1
