"""Small typed contracts between the API, workflows and activities. Pure dataclasses:
the API imports these (never workflow code), and they cross the Temporal data converter."""

from __future__ import annotations

from dataclasses import dataclass

TASK_QUEUE = "omniflow"


@dataclass(frozen=True)
class HousekeepingInput:
    idempotency_ttl_hours: int = 24


@dataclass(frozen=True)
class HousekeepingResult:
    idempotency_records_purged: int
