"""The backorder dispatcher's activity when one arrival is enough for more waiting orders than
it reads at a time: it pages on, oldest backorder first, and signals exactly the orders the
arrived units can serve (bench/backlog.py measures it with 10,000)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities import backorders
from runtime.settings import Settings
from tests.factories import receive
from tests.orders import place_order, stocked_shop, until
from workflows.contracts import StockArrived, WakeInput


class _Signals:
    """A client that only records the signals sent through it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, list[str]]] = []

    def get_workflow_handle(self, workflow_id: str) -> Any:
        sent = self.sent

        class _Handle:
            async def signal(self, name: str, news: StockArrived) -> None:
                sent.append((workflow_id, name, news.skus))

        return _Handle()


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    return await stocked_shop(engine)


async def test_one_arrival_wakes_waiting_orders_page_after_page_oldest_first(
    shop: AsyncEngine, temporal_client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = []
    for n in range(5):
        h = await place_order(
            shop, temporal_client, settings, f"W-{n}", [("COFFEE", 1, 900)], customer=f"c-{n}"
        )
        await until(h, lambda s: s.status == "awaiting_stock")
        waiting.append(h.id)
    monkeypatch.setattr(backorders, "PAGE", 2)
    monkeypatch.setattr(backorders, "WOKEN_LISTED", 3)
    await receive(shop, "COFFEE", "DC-EAST", 4, lot="L1")  # enough for the four oldest
    signals = _Signals()
    wake = backorders.BackorderActivities(shop, cast(Client, signals)).wake_backorders
    result = await ActivityEnvironment().run(wake, WakeInput(wait_seconds=1))
    assert sorted(o for o, _, _ in signals.sent) == sorted(waiting[:4])
    assert {(name, tuple(skus)) for _, name, skus in signals.sent} == {("stock_arrived", ("COFFEE",))}
    assert result.woken_count == 4 and len(result.woken) == 3
