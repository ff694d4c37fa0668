"""The channel publisher when its receiver misbehaves, against the real activities on the
time-skipping server (the workflow's timers and the retries' back-off run when the test
sleeps the environment): a delivery that times out and then fails (500) past the limit
opens `channel_sync_failed`, resolved by a resync that sends a snapshot first; a delivery
answered late, after its own retry and a newer delivery (the retry is the same delivery, so
the late one is a duplicate); a drop to zero sent at once, ahead of a long batch window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.publishing import PublishingActivities
from bench.publish_check import check
from models import publishing_store as store
from runtime.settings import Settings
from tests.conftest import Desk
from tests.factories import receive
from tests.publishing import Receiver, availability, running_receiver, status_when, until
from tests.test_replay import record_history
from worker import WORKFLOWS, build_activities
from workflows.contracts import ExceptionPolicyInput, PublisherInput, publisher_workflow_id

SECRET = "whsec_failures"
TIMEOUT = 0.5  # the sender's HTTP timeout here (10 s in production)
FAIL_AFTER = 20
Headers = dict[str, str]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver(SECRET) as r:
        r.stall_seconds = 3 * TIMEOUT
        yield r


@pytest.fixture
async def quick_worker(
    temporal_client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[Worker]:
    """The real worker, its publishing activities with a short HTTP timeout."""
    publishing = PublishingActivities(engine, timeout_seconds=TIMEOUT)
    others = [
        a
        for a in build_activities(engine, settings, temporal_client)
        if not isinstance(getattr(a, "__self__", None), PublishingActivities)
    ]
    activities = [*others, publishing.publish_channel_round, publishing.mark_channel_failing]
    queue = settings.task_queue
    async with Worker(temporal_client, task_queue=queue, workflows=WORKFLOWS, activities=activities) as w:  # type: ignore[arg-type]
        yield w


async def _start(client: Client, engine: AsyncEngine, settings: Settings, url: str, **over: Any) -> str:
    config = {"url": url, "enabled": True, "batch_ms": 0, "max_batch": 500, "rate_per_s": 100.0, **over}
    async with engine.begin() as conn:
        await store.put_target(conn, "web", SECRET, **config)
    policy = ExceptionPolicyInput(sla_seconds=3600, max_escalations=1, default_action="retry_now")
    wid = publisher_workflow_id("web")
    inp = PublisherInput("web", FAIL_AFTER, policy, rounds_before_new=60, idle_wait_seconds=0.5)
    await client.start_workflow("ChannelPublisher", inp, id=wid, task_queue=settings.task_queue)
    return wid


async def _truth(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return await store.current_atp(conn, "web")


async def _open_sync_failed(api: httpx.AsyncClient, headers: Headers) -> dict[str, Any]:
    params = {"kind": "channel_sync_failed", "subject_id": "web", "status": "open"}
    r = await api.get("/v1/exceptions", params=params, headers=headers)
    items: list[dict[str, Any]] = r.json()["items"]
    return items[0] if items else {}


async def test_a_timeout_then_failures_past_the_limit_open_sync_failed_and_a_resync_sends_a_snapshot_first(
    desk: Desk, quick_worker: Worker, receiver: Receiver
) -> None:
    await receive(desk.engine, "TEE", "DC-EAST", 5)
    wid = await _start(desk.client, desk.engine, desk.settings, receiver.hook)
    truth = await _truth(desk.engine)
    await until(desk.env, lambda: receiver.state == truth)
    receiver.stall_next = 1  # the next delivery times out (and is applied late, by the receiver)
    await receive(desk.engine, "TEE", "DC-EAST", 3)
    await until(desk.env, lambda: receiver.stalling == 1)
    receiver.fail_next = 10**6  # then the receiver answers 500, past the failure limit
    found: dict[str, Any] = {}

    async def opened() -> bool:
        found.update(await _open_sync_failed(desk.api, desk.keys["admin"]))
        return bool(found)

    for _ in range(200):
        if await opened():
            break
        await desk.env.sleep(1.0)
        await asyncio.sleep(0.02)
    assert found, "channel_sync_failed never opened"
    status = (await desk.api.get("/v1/channels/web/publishing/status", headers=desk.keys["readonly"])).json()
    assert status["failing_since"] is not None and status["snapshot_due"] is True
    await until(desk.env, lambda: len(receiver.deliveries) == 2)  # the held delivery, applied late
    receiver.fail_next = 0  # the receiver is back; more changes meanwhile
    await receive(desk.engine, "MUG", "DC-WEST", 4)
    count = len(receiver.deliveries)
    r = await desk.api.post(
        f"/v1/exceptions/{found['id']}/resolve", json={"action": "resync"}, headers=desk.keys["admin"]
    )
    assert r.status_code in (200, 202), r.text
    truth = await _truth(desk.engine)
    await until(desk.env, lambda: receiver.state == truth and len(receiver.deliveries) > count)
    assert receiver.deliveries[count]["kind"] == "snapshot"
    assert receiver.bad_signatures == 0
    status = await status_when(desk.api, desk.keys["readonly"], lambda s: s["failing_since"] is None)
    assert status["failing_since"] is None and status["snapshot_due"] is False
    await desk.client.get_workflow_handle(wid).terminate("test over")
    await record_history(desk.client, wid, "publisher-sync-failed-resync")


async def test_a_delivery_answered_late_after_its_retry_and_a_newer_one_changes_nothing(
    desk: Desk, quick_worker: Worker, receiver: Receiver
) -> None:
    await receive(desk.engine, "TEE", "DC-EAST", 5)
    await _start(desk.client, desk.engine, desk.settings, receiver.hook)
    await until(desk.env, lambda: receiver.state.get("TEE") == 5)
    receiver.stall_next = 1  # TEE 5 -> 8 is held past the sender's timeout ...
    await receive(desk.engine, "TEE", "DC-EAST", 3)
    for _ in range(200):
        if receiver.stalling:
            break
        await asyncio.sleep(0.01)
    await receive(desk.engine, "TEE", "DC-EAST", 2)  # ... more changes meanwhile do not join its retry
    await until(desk.env, lambda: receiver.state.get("TEE") == 10)  # the retry (5 -> 8), then 8 -> 10
    await until(desk.env, lambda: receiver.duplicates == 1)  # the held one is answered last
    truth = await _truth(desk.engine)
    assert receiver.state == truth and truth["TEE"] == 10 and receiver.stale == 0
    tee = [(a.previous, a.available) for a in receiver.applied[("web", "TEE")] if a.kind == "delta"]
    assert tee == [(5, 8), (8, 10)]
    held = receiver.applied[("web", "TEE")][1].delivery_id  # posted twice, held then retried: one id
    assert receiver.attempts.count(held) == 2
    verdict = await check(desk.engine, receiver, ["web"], await availability(desk.api, desk.keys["readonly"]))
    assert verdict.ok, verdict


async def test_a_drop_to_zero_goes_at_once_ahead_of_a_long_batch_window(
    desk: Desk, quick_worker: Worker, receiver: Receiver
) -> None:
    await receive(desk.engine, "TEE", "DC-EAST", 5)
    await receive(desk.engine, "MUG", "DC-WEST", 4)
    await _start(desk.client, desk.engine, desk.settings, receiver.hook, batch_ms=60_000)
    await until(desk.env, lambda: receiver.state.get("MUG") == 4)  # the snapshot goes at once
    await receive(desk.engine, "TEE", "DC-EAST", 3)  # waits for its window ...
    await asyncio.sleep(0.3)
    await receive(desk.engine, "MUG", "DC-WEST", -4)  # ... a sell-out does not
    await until(desk.env, lambda: receiver.state.get("MUG") == 0, timeout=5.0, step=0.05)
    drop = receiver.deliveries[-1]
    assert drop["kind"] == "delta" and {i["sku"]: i["available"] for i in drop["items"]}["MUG"] == 0
