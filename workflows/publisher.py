"""Channel publisher `publish-{channel}`: round after round, deliver the channel's ATP
changes to its webhook (activities/publishing.py: each round delivers the batch the round
before pinned, rebuilt from the feed, signed, POSTed, the cursor advanced only after a 2xx,
then pins the next). The workflow keeps the pinned batch, so a retry or a new worker sends
the same delivery; it waits for a poke while the target is off (the rounds keep the batch
window and the target's rate). A round that keeps failing past `fail_after_seconds` opens
`channel_sync_failed` (retry now, pause, full resync; a snapshot goes first once deliveries
work again). Continues-as-new every few hundred rounds so its history stays small."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import activity_calls as calls
    from workflows.contracts import (
        CLOSE_EXCEPTION,
        MARK_CHANNEL_FAILING,
        PUBLISH_ROUND,
        ChannelFailing,
        PublishBatch,
        Published,
        PublisherInput,
        PublishRound,
    )
    from workflows.exception_wait import AwaitsDecisions, ExceptionWaiter, exception_for

SYNC_FAILED_ACTIONS = ("retry_now", "pause", "resync")
ROUND_TIMEOUT = timedelta(seconds=60)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30)
)
IDLE_RECHECK = timedelta(minutes=10)  # a switched-off target is looked at again this often


# The target's rate is kept by the round activity (a workflow timer of a few milliseconds
# fires only after about a second on the server): no timer between deliveries.
RATE_IN_ROUND = "publish-rate-in-round"


@dataclass
class PublisherState:
    rounds: int = 0
    poked: bool = False
    failures: int = 0
    pending: PublishBatch | None = None  # decided by the last round, delivered by the next


@workflow.defn(name="ChannelPublisher")
class ChannelPublisherWorkflow(AwaitsDecisions):
    @workflow.init
    def __init__(self, inp: PublisherInput) -> None:
        self.inp = inp
        self.state = PublisherState()
        self.waiter = ExceptionWaiter()

    @workflow.run
    async def run(self, inp: PublisherInput) -> None:
        while self.state.rounds < inp.rounds_before_new:
            self.state.rounds += 1
            published = await self.deliver()
            await self.pace(published)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp)

    @workflow.signal
    def poke(self) -> None:
        """The target changed or a resync was asked: start a round now."""
        self.state.poked = True

    async def deliver(self) -> Published | None:
        """One round; None when it failed for longer than the target may (after a person
        decided what to do)."""
        round_ = PublishRound(self.inp.channel, self.inp.idle_wait_seconds, self.state.pending)
        try:
            published = await calls.run(
                PUBLISH_ROUND,
                round_,
                start_to_close=ROUND_TIMEOUT,
                retry=DELIVERY_RETRY,
                heartbeat=timedelta(seconds=30),
                schedule_to_close=timedelta(seconds=self.inp.fail_after_seconds),
            )
        except ActivityError:
            await self.sync_failed()  # the pinned batch stays: a snapshot is owed first now
            return None
        self.state.pending = published.next
        return published

    async def pace(self, published: Published | None) -> None:
        """Wait as the round says: the batch window, the target's rate, or a poke."""
        self.state.poked = False
        if published is None:
            return
        if not published.enabled:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.state.poked, timeout=IDLE_RECHECK)
        elif published.wait_ms:
            await workflow.sleep(timedelta(milliseconds=published.wait_ms))
        elif published.delivered and published.rate_per_s > 0 and not workflow.patched(RATE_IN_ROUND):
            await workflow.sleep(timedelta(seconds=1 / published.rate_per_s))

    async def sync_failed(self) -> None:
        """Deliveries failed past the limit: a snapshot is due, and a person chooses."""
        self.state.failures += 1
        await calls.run_local(
            MARK_CHANNEL_FAILING, ChannelFailing(self.inp.channel), start_to_close=ROUND_TIMEOUT
        )
        key = f"channel_sync_failed:{self.state.failures}"
        details: dict[str, object] = {"channel": self.inp.channel}
        req = exception_for(
            "channel_sync_failed",
            key,
            ("channel", self.inp.channel),
            self.inp.policy,
            0,
            SYNC_FAILED_ACTIONS,
            details,
        )
        resolution = await self.waiter.wait(req, self.inp.policy)
        if resolution is None:
            return
        if resolution.action == "pause":
            await calls.run_local(
                MARK_CHANNEL_FAILING,
                ChannelFailing(self.inp.channel, paused=True),
                start_to_close=ROUND_TIMEOUT,
            )
        await calls.run_local(CLOSE_EXCEPTION, resolution, start_to_close=ROUND_TIMEOUT)
        self.waiter.closed()
