"""The Replenishment workflow with the real worker, Postgres and the Temporal test server: a
run drafts its POs and starts each one's `PurchaseOrder` workflow (approval required); a
second run of the same id starts nothing new; a scheduled run (no id) names itself."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from runtime.settings import Settings
from tests.test_replay import record_history
from tests.test_replenishment_db import replenishment_world
from workflows.contracts import (
    PURCHASE_ORDER_WORKFLOW,
    PurchaseOrderInput,
    ReplenishmentInput,
    ReplenishmentResult,
    purchase_order_workflow_id,
    replenishment_workflow_id,
)
from workflows.replenishment import ReplenishmentWorkflow


async def _run(client: Client, settings: Settings, run_id: str, workflow_id: str) -> ReplenishmentResult:
    return await client.execute_workflow(
        ReplenishmentWorkflow.run,
        ReplenishmentInput(run_id),
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def test_a_run_drafts_pos_and_starts_their_workflows(
    engine: AsyncEngine, worker: Worker, temporal_client: Client, settings: Settings
) -> None:
    await replenishment_world(engine)
    result = await _run(temporal_client, settings, "wf-1", replenishment_workflow_id("wf-1"))
    numbers = ["R-wf-1-ACME-DC-WEST", "R-wf-1-BETA-DC-EAST"]
    assert [o.number for o in result.orders] == numbers and result.started == 2 and result.suggestions == 2
    async with engine.connect() as conn:
        sql = "SELECT number, source, run_id, value, status FROM purchase_order ORDER BY 1"
        rows = list(await conn.execute(text(sql)))
        run = (await conn.execute(text("SELECT status, finished_at FROM replenishment_run"))).one()
    assert [tuple(r)[:4] for r in rows] == [
        ("R-wf-1-ACME-DC-WEST", "replenishment", "wf-1", 4000),
        ("R-wf-1-BETA-DC-EAST", "replenishment", "wf-1", 10_500),
    ]
    # drafted; the PO workflow (once registered) moves it on to wait for a person's approval
    assert {r.status for r in rows} <= {"draft", "awaiting_approval"}
    assert run.status == "done" and run.finished_at is not None
    await record_history(temporal_client, replenishment_workflow_id("wf-1"), "replenishment")
    for number, value in zip(numbers, (4000, 10_500), strict=True):
        handle = temporal_client.get_workflow_handle(purchase_order_workflow_id(number))
        described = await handle.describe()
        assert described.workflow_type == PURCHASE_ORDER_WORKFLOW
        assert described.task_queue == settings.task_queue
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        payload = temporal_client.data_converter.payload_converter.from_payloads(
            list(started.input.payloads), [PurchaseOrderInput]
        )[0]
        assert (payload.number, payload.value, payload.approval_required) == (number, value, True)
        assert set(payload.policies) >= {"po_approval", "bill_mismatch"}
        assert payload.tolerances.over_receipt == settings.po_over_receipt_tolerance

    # The same run again (a retried request, an overlapping run): the same POs, no new ones.
    again = await _run(temporal_client, settings, "wf-1", replenishment_workflow_id("wf-1") + "-again")
    assert [o.number for o in again.orders] == numbers
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM purchase_order"))).scalar() == 2


async def test_a_scheduled_run_is_named_by_its_start_time(
    engine: AsyncEngine, worker: Worker, temporal_client: Client, settings: Settings
) -> None:
    await replenishment_world(engine)
    result = await _run(temporal_client, settings, "", "replenishment-scheduled")
    await record_history(temporal_client, "replenishment-scheduled", "replenishment-scheduled")
    assert result.run_id.startswith("S") and len(result.run_id) == len("S20260101T000000")
    assert all(o.number.startswith(f"R-{result.run_id}-") for o in result.orders) and len(result.orders) == 2
