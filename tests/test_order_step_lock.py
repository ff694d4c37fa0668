"""How an order step begins (activities.order_step.order_step): the order row locked and the
step's own record read, in one statement when nothing else holds the order. Here a duplicate
of the step (an activity that runs twice, the retry beside the attempt that timed out) really
holds the order's lock on the real Postgres and commits the step's record while the step
waits: the step must see that record, not the snapshot it started with."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from activities.order_step import order_step
from bench.sourcing import order_intake
from models import order_store as orders
from models.order_intake import insert_order
from tests.factories import standard_catalog


@pytest.fixture
async def order_id(engine: AsyncEngine) -> str:
    await standard_catalog(engine)
    intake = order_intake("web", "LOCK-1", "TEE", 1, allow_backorder=False)
    async with engine.begin() as conn:
        assert await insert_order(conn, intake)
    return intake.order_id


async def test_a_step_that_has_not_run_finds_nothing_and_one_that_has_finds_its_record(
    engine: AsyncEngine, order_id: str
) -> None:
    key = f"{order_id}:source"
    async with order_step(engine, order_id, key) as step:
        assert step.done is None
        assert step.order.id == order_id
        await step.record("sourced", attempt=1)
    async with order_step(engine, order_id, key) as step:
        assert step.done == {"attempt": 1}


async def test_a_step_waiting_on_its_duplicate_sees_what_the_duplicate_committed(
    engine: AsyncEngine, order_id: str
) -> None:
    key = f"{order_id}:source"
    async with engine.connect() as duplicate:
        await duplicate.begin()
        assert await orders.lock_order(duplicate, order_id) is not None
        await orders.add_event(duplicate, order_id, key, "sourced", {"attempt": 1})

        async def the_step() -> object:
            async with order_step(engine, order_id, key) as step:
                return step.done

        seen = asyncio.create_task(the_step())
        await asyncio.sleep(0.3)
        assert not seen.done(), "the step took the order's lock while its duplicate held it"
        await duplicate.commit()
    assert await asyncio.wait_for(seen, 10) == {"attempt": 1}


async def test_a_step_of_an_order_never_recorded_is_refused(engine: AsyncEngine) -> None:
    await standard_catalog(engine)
    with pytest.raises(ApplicationError) as refused:
        async with order_step(engine, "ord_missing", "ord_missing:source"):
            pass
    assert refused.value.type == "unknown_order"
    assert refused.value.non_retryable
