"""Replenishment: a run drafts purchase orders from the suggestions (one transaction, keyed
by the run id) and then starts each PO's workflow. Run by the schedule
`omniflow-replenishment` or on demand (`POST /v1/replenishment/run`)."""

from dataclasses import dataclass, field

from workflows.contracts.activity import ActivityRef

REPLENISHMENT_WORKFLOW = "Replenishment"
REPLENISHMENT_SCHEDULE_ID = "omniflow-replenishment"


def replenishment_workflow_id(run_id: str) -> str:
    return f"replenishment-{run_id}"


@dataclass(frozen=True)
class ReplenishmentInput:
    run_id: str = ""  # empty (the schedule): "S" + the start time, UTC, to the second


@dataclass(frozen=True)
class DraftedPo:
    number: str
    supplier: str
    location: str
    currency: str
    value: int  # minor units
    lines: int


@dataclass(frozen=True)
class DraftRun:
    run_id: str


@dataclass(frozen=True)
class DraftedRun:
    run_id: str
    suggestions: int  # SKU-locations that needed an order
    orders: list[DraftedPo] = field(default_factory=list)
    replayed: bool = False  # the run id had drafted already: its first answer again


@dataclass(frozen=True)
class StartOrders:
    run_id: str
    orders: list[DraftedPo]


@dataclass(frozen=True)
class OrdersStarted:
    run_id: str
    started: int


@dataclass(frozen=True)
class ReplenishmentResult:
    run_id: str
    suggestions: int
    orders: list[DraftedPo]
    started: int


DRAFT_REPLENISHMENT = ActivityRef("draft_replenishment", DraftRun, DraftedRun)
START_REPLENISHMENT_ORDERS = ActivityRef("start_replenishment_orders", StartOrders, OrdersStarted)
