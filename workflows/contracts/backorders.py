"""The backorder dispatcher: one loop that wakes waiting orders when stock arrives."""

from dataclasses import dataclass

from workflows.contracts.activity import ActivityRef


@dataclass(frozen=True)
class WakeInput:
    after: str = ""  # feed position (see models.availability.encode_after)
    wait_seconds: int = 30
    rounds: int = 0  # continue-as-new after enough rounds


@dataclass(frozen=True)
class WakeResult:
    after: str
    arrivals: int
    woken: list[str]  # the first orders signalled (activities.backorders.WOKEN_LISTED)
    woken_count: int = 0  # all of them


BACKORDER_DISPATCHER_ID = "backorder-dispatcher"


WAKE_BACKORDERS = ActivityRef("wake_backorders", WakeInput, WakeResult)
