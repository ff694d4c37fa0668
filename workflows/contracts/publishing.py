"""A channel's publisher `publish-{channel}` as the API, its workflow and its activities
exchange it."""

from dataclasses import dataclass

from workflows.contracts.activity import ActivityRef, NoResult
from workflows.contracts.exceptions import ExceptionPolicyInput

PUBLISHER_WORKFLOW = "ChannelPublisher"


def publisher_workflow_id(channel: str) -> str:
    return f"publish-{channel}"


@dataclass(frozen=True)
class PublisherInput:
    channel: str
    fail_after_seconds: int  # a delivery failing this long opens channel_sync_failed
    policy: ExceptionPolicyInput  # of channel_sync_failed
    rounds_before_new: int = 500  # continue-as-new after this many rounds (history stays small)
    idle_wait_seconds: float = 10.0  # how long one round waits for a change before it ends empty


@dataclass(frozen=True)
class PublishBatch:
    """A delivery decided and not yet acknowledged: its kind and the feed range it brings
    the receiver over. Every attempt rebuilds it from the feed, so a retry, or another worker
    after a crash, sends the same delivery id with the same items."""

    kind: str  # "delta" | "snapshot"
    start_txid: int
    start_seq: int
    end_txid: int
    end_seq: int


@dataclass(frozen=True)
class PublishRound:
    channel: str
    idle_wait_seconds: float
    batch: PublishBatch | None = None  # deliver this first (the round before decided it)


@dataclass(frozen=True)
class Published:
    enabled: bool  # False: the target is off or paused (the workflow waits for a poke)
    delivered: bool = False
    items: int = 0
    kind: str = ""
    wait_ms: int = 0  # the batch window is still open: come back after this long
    rate_per_s: float = 0.0
    next: PublishBatch | None = None  # due now: the next round delivers it


@dataclass(frozen=True)
class ChannelFailing:
    channel: str
    paused: bool = False  # also pause the target (a person chose to)


PUBLISH_ROUND = ActivityRef("publish_channel_round", PublishRound, Published)
MARK_CHANNEL_FAILING = ActivityRef("mark_channel_failing", ChannelFailing, NoResult)
