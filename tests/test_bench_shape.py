"""The ceiling of the benchmark makes exactly the round trips of a real order: its shape is
read from the order's history (here: the recorded ones)."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.ceiling import Shape
from bench.lifecycle import shape_of

HISTORIES = Path(__file__).resolve().parent / "histories"


def _history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())


def test_the_shape_of_an_order_before_and_after_the_round_trip_cuts() -> None:
    before, trips_before = shape_of(_history("order-happy-path-before-local-steps"))
    assert before == Shape(activities_before=2, activities_per_update=1, activities_after=1, updates=3)
    assert trips_before["activities"] == 6 and trips_before["local_activities"] == 0
    after, trips_after = shape_of(_history("order-happy-path"))
    assert after == Shape(
        activities_before=0,
        activities_per_update=0,
        activities_after=0,
        updates=3,
        local_before=1,
        local_per_update=1,
        local_after=0,
    )
    assert trips_after["history_events"] < trips_before["history_events"]
