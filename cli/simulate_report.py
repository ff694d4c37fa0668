"""What `omniflow simulate` shows: the live counts while it runs (what the actors did, and
what the API says about this run's orders), and at the end a summary that puts each count the
simulator kept next to what the API reads back afterwards (`read_back`: every order, shipment,
exception, purchase order and return of the run, by its tag)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import httpx
from rich.console import Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.simulate_actors import Run
from cli.simulate_plan import MIXES
from client import ApiError, Order

CHANNELS = tuple(m.channel for m in MIXES)


def cancelled_by(order: Order, run: Run) -> str | None:
    """Who cancelled the whole order: `customer` (its channel's key), `shop` (no stock and no
    backorder: refused), `policy` (an exception ran out of escalations), `desk`; None if it is
    not cancelled."""
    if order.status != "cancelled":
        return None
    events = [e for e in order.timeline if e.event == "cancelled"]
    who = str(events[-1].detail.get("by", "")) if events else ""
    if who == "system:sourcing":
        return "shop"
    if who == "system:policy":
        return "policy"
    if run.cast.key_ids.get(order.channel, "?") in who:
        return "customer"
    return "desk"


async def read_back(run: Run, since: str) -> Counter[str]:
    """This run as the API has it now (the admin key reads everything). Read every few
    seconds while the run goes (the live column; one paged list of each, not a poll per
    order), and once at the end."""
    api, prefix, seen = run.cast.admin, f"{run.tag}-", Counter[str]()
    desk = {run.cast.key_ids["approver"], run.cast.key_ids["warehouse"]}
    async for order in api.iter_orders(created_from=since, limit=500):
        if order.external_id.startswith(prefix):
            run.note(order)
            count_order(seen, order, run)
    for status in ("open", "resolved", "cancelled"):
        async for item in api.iter_exceptions(status=status, limit=500):
            if run.tag in item.subject.id:
                seen["exceptions"] += 1
                seen[f"exceptions:{status}"] += 1
                seen["escalated"] += item.escalation_level > 0
                who = item.resolved_by or ""
                seen["decided"] += status == "resolved" and any(key in who for key in desk)
                seen["defaulted"] += who == "system:policy"
    async for po in api.iter_purchase_orders(limit=500):
        if po.number.startswith(prefix):
            seen["pos"] += 1
            seen[f"po:{po.status}"] += 1
            seen["po_receipts"] += len(po.receipts)
    async for ret in api.iter_returns(limit=500):
        if ret.number.startswith(prefix):
            seen["returns"] += 1
            seen[f"return:{ret.status}"] += 1
    return seen


async def safe_read_back(run: Run, since: str) -> Counter[str] | None:
    try:
        return await read_back(run, since)
    except (ApiError, httpx.TransportError):
        return None


def _sum(tally: Counter[str], prefix: str, refusal: str = "") -> int:
    """The steps under `prefix` the API took, or (`refusal`: "!409") those it answered so."""
    return sum(
        n
        for k, n in tally.items()
        if k.startswith(prefix) and (k.endswith(refusal) if refusal else "!" not in k)
    )


def rows(run: Run, api: Counter[str] | None) -> list[tuple[str, str, str]]:
    """(what, the simulator's count, the API's) for the summary and the live table."""
    t, a = run.tally, api if api is not None else Counter[str]()

    def show(n: int) -> str:
        return "" if api is None else str(n)

    out = [(f"orders placed: {ch}", str(t[f"placed:{ch}"]), show(a[f"orders:{ch}"])) for ch in CHANNELS]
    out += [
        ("  of them in the flash sale", str(t["placed_flash"]), ""),
        ("flash buyers turned away at intake (no stock: 409)", str(_sum(t, "placed:", "!409")), ""),
        ("orders refused (no stock, no backorder)", "", show(a["cancelled_by:shop"])),
        ("orders cancelled by the customer", str(t["cancelled"]), show(a["cancelled_by:customer"])),
        ("  cancels too late (shipped: 409)", str(t["cancelled!409"]), ""),
        ("orders cancelled by a default action", "", show(a["cancelled_by:policy"])),
        ("orders completed", "", show(a["status:completed"])),
        ("shipments shipped", str(t["shipped"]), show(a["shipments_shipped"])),
        ("  short picks", str(t["short_picked"]), ""),
        ("exceptions opened", str(_sum(t, "seen:")), show(a["exceptions"])),
        ("exceptions decided by the desk", str(_sum(t, "decided:")), show(a["decided"])),
        ("exceptions escalated", str(_sum(t, "escalated:")), show(a["escalated"])),
        ("exceptions that ran to their default action", "", show(a["defaulted"])),
        ("purchase orders placed", str(t["po_created"]), show(a["pos"])),
        (
            "  confirmed by the supplier / received",
            f"{t['po_confirmed']} / {t['po_received']}",
            show(a["po_receipts"]),
        ),
        ("returns asked for", str(t["returns_created"]), show(a["returns"])),
        ("  received / inspected", f"{t['returns_received']} / {t['returns_inspected']}", ""),
    ]
    expected = {"cancelled!409"} | {k for k in t if k.startswith("placed:") and k.endswith("!409")}
    refused = sum(n for k, n in t.items() if "!" in k and k not in expected)
    out.append(("steps the API refused (4xx) or did not answer", str(refused), ""))
    return out


def table(run: Run, api: Counter[str] | None, title: str) -> Table:
    grid = Table(title=title, title_justify="left", show_edge=False)
    grid.add_column("")
    grid.add_column("simulator", justify="right")
    grid.add_column("API reads", justify="right")
    for what, ours, theirs in rows(run, api):
        grid.add_row(what, ours, theirs)
    return grid


class LiveView:
    """A progress bar of orders placed and of time, and the counts under it."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.orders = self.progress.add_task("orders placed", total=len(run.plan.orders))
        self.time = self.progress.add_task("seconds", total=round(run.plan.duration))
        self.api: Counter[str] | None = None

    def update(self) -> RenderableType:
        placed = _sum(self.run.tally, "placed:")
        self.progress.update(self.orders, completed=placed)
        self.progress.update(
            self.time, completed=min(round(self.run.clock.now()), round(self.run.plan.duration))
        )
        return Group(self.progress, table(self.run, self.api, f"run {self.run.tag}"))


def count_order(seen: Counter[str], order: Order, run: Run) -> None:
    seen[f"orders:{order.channel}"] += 1
    seen[f"status:{order.status}"] += 1
    seen[f"cancelled_by:{cancelled_by(order, run)}"] += 1
    seen["shipments_shipped"] += sum(s.status == "shipped" for s in order.shipments)


@dataclass(frozen=True)
class Outcome:
    """What a run did and what the API read back afterwards; `stopped`: `done` (every story
    finished), `duration` or `interrupted`; `last_step` the second the last step started."""

    tag: str
    tally: Counter[str]
    api: Counter[str]
    stopped: str
    seconds: float
    last_step: float
