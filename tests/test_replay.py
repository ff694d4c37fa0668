"""Replay: recorded histories of every workflow, replayed against the current code. A change
that alters a workflow's command sequence without `workflow.patched` fails here.

Record new histories (after adding a workflow or a deliberate, patched change) with:

    OMNIFLOW_RECORD_HISTORIES=1 .venv/bin/pytest tests/test_replay.py tests/test_transfers.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORDING = os.environ.get("OMNIFLOW_RECORD_HISTORIES") == "1"


async def record_history(client: Client, workflow_id: str, name: str) -> None:
    """Called by scenario tests: keeps the finished workflow's history when recording."""
    if not RECORDING:
        return
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


def _recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_every_workflow_type_has_a_recorded_history() -> None:
    import json

    recorded = {
        json.loads(p.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"][
            "name"
        ]
        for p in _recorded()
    }
    from temporalio import workflow

    names = {str(workflow._Definition.must_from_class(w).name) for w in WORKFLOWS}
    missing = names - recorded
    assert not missing, f"record a history for {sorted(missing)} (see this module's docstring)"


@pytest.mark.parametrize("path", _recorded(), ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=WORKFLOWS).replay_workflow(history)
