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
class PublishRound:
    channel: str
    idle_wait_seconds: float


@dataclass(frozen=True)
class Published:
    enabled: bool  # False: the target is off or paused (the workflow waits for a poke)
    delivered: bool = False
    items: int = 0
    kind: str = ""
    wait_ms: int = 0  # the batch window is still open: come back after this long
    rate_per_s: float = 0.0


@dataclass(frozen=True)
class ChannelFailing:
    channel: str
    paused: bool = False  # also pause the target (a person chose to)


PUBLISH_ROUND = ActivityRef("publish_channel_round", PublishRound, Published)
MARK_CHANNEL_FAILING = ActivityRef("mark_channel_failing", ChannelFailing, NoResult)
