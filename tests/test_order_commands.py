"""What an order asks of the Temporal server beyond the round trips the benchmark's ceiling
makes: one patch marker (`lean-commands`, which stands for the three patches runs before it
asked, each a marker plus an upsert of TemporalChangeVersion), and a search-attribute upsert
only when a value changes (the API starts the run with OmniChannel and OmniStatus). Runs
recorded before it still replay with their three patches (tests/test_replay.py,
`*-before-lean-commands`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from api.order_start import sa_pairs
from runtime.settings import Settings
from tests.orders import fulfil, place_order, stocked_shop, until
from workflows import search_attributes as sa

HISTORIES = Path(__file__).resolve().parent / "histories"


@pytest.fixture
async def shop(engine: AsyncEngine, worker: Worker) -> AsyncEngine:
    return await stocked_shop(engine)


def _commands(history: WorkflowHistory) -> tuple[list[str], list[tuple[str, Any]]]:
    """The patch ids of a history's patch markers, and each upserted (attribute, value)."""
    patches: list[str] = []
    upserts: list[tuple[str, Any]] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == "core_patch":
                patches.append(json.loads(attrs.details["patch-data"].payloads[0].data)["id"])
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            upserts += [(name, json.loads(p.data)) for name, p in fields.items()]
    return patches, upserts


def test_a_run_before_lean_commands_asked_three_patches_and_upserted_every_status() -> None:
    name = "order-happy-path-before-lean-commands"
    patches, upserts = _commands(WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text()))
    assert patches == ["close-in-last-step", "record-and-source", "local-steps"]
    statuses = [v for k, v in upserts if k == "OmniStatus"]
    assert statuses == ["allocated", "in_fulfillment", "in_fulfillment", "completed"]


async def test_an_order_started_as_the_api_starts_it_asks_one_patch_and_upserts_only_changes(
    shop: AsyncEngine, temporal_client: Client, settings: Settings
) -> None:
    h = await place_order(
        shop, temporal_client, settings, "L-1", [("TEE", 1, 2000)], search_attributes=sa_pairs("web")
    )
    snap = await until(h, lambda s: s.status == "allocated")
    await fulfil(h, snap.shipments[0].id)
    await h.result()
    patches, upserts = _commands(await h.fetch_history())
    assert patches == ["lean-commands"]
    assert [k for k, _ in upserts].count("TemporalChangeVersion") == 1
    # the channel came with the start; pick and pack both leave the order in_fulfillment
    assert [(k, v) for k, v in upserts if k.startswith("Omni")] == [
        ("OmniStatus", "allocated"),
        ("OmniStatus", "in_fulfillment"),
        ("OmniStatus", "completed"),
    ]
    attrs = (await h.describe()).typed_search_attributes
    assert (attrs.get(sa.OMNI_STATUS), attrs.get(sa.OMNI_CHANNEL)) == ("completed", "web")
