"""The channel publisher against the real activities and a receiver on loopback: a snapshot
first, then deltas coalesced per SKU, each signed; a failing receiver is retried with the
same delivery id; in the end the receiver holds exactly the channel's ATP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import publishing_store as store
from runtime.settings import Settings
from tests.factories import receive, standard_catalog
from tests.publishing import Receiver, running_receiver, start_publisher, until
from tests.test_replay import record_history

SECRET = "whsec_test"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver(SECRET) as r:
        yield r


async def _truth(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return await store.current_atp(conn, "web")


async def test_the_receiver_ends_with_the_channels_atp_after_a_snapshot_and_signed_deltas(
    engine: AsyncEngine,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    worker: Worker,
    receiver: Receiver,
) -> None:
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 5)
    wid = await start_publisher(temporal_client, engine, settings, receiver)
    truth = await _truth(engine)
    await until(temporal_env, lambda: receiver.state == truth)
    assert receiver.deliveries[0]["kind"] == "snapshot" and receiver.state["TEE"] == 5
    receiver.fail_next = 2  # the next two POSTs fail: retried, same delivery id
    await receive(engine, "TEE", "DC-EAST", 3)
    await receive(engine, "MUG", "DC-WEST", 4)
    truth = await _truth(engine)
    await until(temporal_env, lambda: receiver.state == truth)
    delta = receiver.deliveries[-1]
    assert delta["kind"] == "delta" and receiver.bad_signatures == 0
    assert {i["sku"]: i["previous"] for i in delta["items"]}.get("TEE") in (5, 8, None)
    assert receiver.fail_next == 0
    async with engine.connect() as conn:
        stats = await store.lag_stats(conn, "web")
    assert stats.n >= 1 and stats.p99 is not None
    handle = temporal_client.get_workflow_handle(wid)
    await handle.terminate("test over")
    await record_history(temporal_client, wid, "publisher-snapshot-then-deltas")
