"""What the order benchmark reports: the Temporal work of one order read from its history
(the shape the ceiling must match), the plot and the table (bench/lifecycle.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory

from bench.ceiling import Shape


async def order_shape(client: Client, order_id: str) -> tuple[Shape, dict[str, int]]:
    """The Temporal work of one finished order, from its history."""
    return shape_of(await client.get_workflow_handle(order_id).fetch_history())


def shape_of(history: WorkflowHistory) -> tuple[Shape, dict[str, int]]:
    """Each (local) activity of a history placed before the first update, inside an update,
    or after the last one; plus the counts of every kind of round trip."""
    counts: dict[str, int] = defaultdict(int)
    accepted = completed = 0
    placed: list[tuple[str, bool, int, bool]] = []  # (kind, local, updates accepted so far, inside one)
    for event in history.events:
        kind = event.WhichOneof("attributes") or ""
        counts[kind] += 1
        if kind == "workflow_execution_update_accepted_event_attributes":
            accepted += 1
        elif kind == "workflow_execution_update_completed_event_attributes":
            completed += 1
        elif kind == "activity_task_scheduled_event_attributes" or (
            kind == "marker_recorded_event_attributes"
            and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        ):
            counts["local_activity"] += kind.startswith("marker")
            placed.append((kind, kind.startswith("marker"), accepted, accepted > completed))
    slots: dict[tuple[str, bool], int] = defaultdict(int)
    for _, local, seen, inside in placed:
        where = "before" if seen == 0 else ("after" if seen == accepted and not inside else "per")
        slots[(where, local)] += 1
    per_update = max(accepted, 1)
    shape = Shape(
        activities_before=slots[("before", False)],
        activities_per_update=slots[("per", False)] // per_update,
        activities_after=slots[("after", False)],
        updates=accepted,
        signals=counts["workflow_execution_signaled_event_attributes"],
        timers=counts["timer_started_event_attributes"],
        local_before=slots[("before", True)],
        local_per_update=slots[("per", True)] // per_update,
        local_after=slots[("after", True)],
    )
    trips = {
        "history_events": len(history.events),
        "workflow_tasks": counts["workflow_task_completed_event_attributes"],
        "activities": counts["activity_task_scheduled_event_attributes"],
        "local_activities": counts["local_activity"],
        "updates": accepted,
        "signals": counts["workflow_execution_signaled_event_attributes"],
        "timers": counts["timer_started_event_attributes"],
    }
    return shape, trips


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result["points"]
    xs = [p["concurrency"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [p["ceiling_wf_per_s"] for p in pts], "o--", label="ceiling (no-op, same round trips)")
    ax.plot(xs, [p["orders_per_s"] for p in pts], "o-", label="omniflow orders (HTTP → completed)")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("per second")
    ax.set_xscale("log", base=2)
    ax.set_title("Order lifecycle throughput vs the Temporal ceiling")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    rows = [
        "| clients | orders/s | ceiling wf/s | ratio | CPU ms per order / per ceiling wf (cpu_ratio; at ours' rate) | "
        "Temporal server CPU ms (server_ratio; at ours' rate) | capture p50/p95/p99 ms | to pick task / pick-pack-ship / "
        "to completed / total ms (p50) | commits / write transactions per order |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result["points"]:
        c, s, db = p["capture_ms"], p["stages_ms"], p.get("db_per_order", {})
        ours, ceil = sum(p["cpu_ms_per_order"].values()), sum(p["ceiling_cpu_ms_per_wf"].values())
        server = f"{p['cpu_ms_per_order'].get('temporal', 0):.0f} / {p['ceiling_cpu_ms_per_wf'].get('temporal', 0):.0f}"
        at_rate = p.get("ceiling_at_our_rate", {}).get("temporal_cpu_ms_per_wf")
        if at_rate is not None:
            server += f"; {at_rate:.0f}"
        rows.append(
            f"| {p['concurrency']} | {p['orders_per_s']} | {p['ceiling_wf_per_s']} | {p['ratio']} | "
            f"{ours:.0f} / {ceil:.0f} ({p.get('cpu_ratio')}; {p.get('cpu_ratio_at_our_rate', '—')}) | {server} ({p.get('server_ratio')}; {p.get('server_ratio_at_our_rate', '—')}) | "
            f"{c['p50']}/{c['p95']}/{c['p99']} | {s.get('capture_to_pick_task')} / {s.get('pick_pack_ship')}"
            f" / {s.get('ship_to_completed_seen')} / {s.get('total')} | {db.get('commits')} / {db.get('write_xacts')} |"
        )
    sale = result["flash_sale"]
    rows.append("")
    if sale:
        rows.append(
            f"flash sale: {sale['orders']} orders for {sale['stock']} units → accepted {sale['accepted_units']}, "
            f"oversold {sale['oversold']} ({sale['by_channel']})"
        )
    rows.append(f"round trips per order: {json.dumps(result['round_trips_per_order'])}")
    return "\n".join(rows)
