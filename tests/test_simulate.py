"""`omniflow simulate`: the plan is the seed's alone and respects its bounds; a bounded run
against the whole stack (`omniflow dev`) counts what the API reads back afterwards."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from cli.simulate import KEY_NAME, Options, simulate
from cli.simulate_plan import POLICIES, decide, make_plan
from client import AsyncOmniflowClient
from tests.stack import DevStack

SLAS = dict.fromkeys([*POLICIES, "count_variance", "bill_mismatch", "channel_sync_failed"], 20)


def test_the_same_seed_gives_the_same_plan() -> None:
    first, again = make_plan(7, 300, 400, 2.0), make_plan(7, 300, 400, 2.0)
    assert first == again
    assert [decide(first, "fraud_review", f"order-web-x-{n}") for n in range(50)] == [
        decide(again, "fraud_review", f"order-web-x-{n}") for n in range(50)
    ]


def test_another_seed_gives_another_plan() -> None:
    one, other = make_plan(7, 300, 400, 2.0), make_plan(8, 300, 400, 2.0)
    assert one.orders != other.orders and one.purchase_orders != other.purchase_orders
    answers = {tuple(decide(p, "fraud_review", f"order-web-x-{n}") for n in range(50)) for p in (one, other)}
    assert len(answers) == 2


def test_the_plan_keeps_its_bounds_and_has_each_kind_of_traffic() -> None:
    plan = make_plan(3, 600, 300, 5.0)
    assert len(plan.orders) == 300  # the count bound (at 5/s, 600 s would take 3,000)
    assert all(0 <= s.at < 600 for s in plan.orders)
    assert {s.channel for s in plan.orders} == {"web", "marketplace", "b2b", "store"}
    assert {s.trouble for s in plan.orders} >= {"address", "payment", "fraud"}
    assert any(s.flash for s in plan.orders) and plan.flash_sale is not None
    assert plan.flash_sale.orders > plan.flash_sale.units  # more buyers than units
    assert all(s.lines[0].qty == 1 and not s.cancel_after for s in plan.orders if s.flash)
    assert any(s.cancel_after is not None for s in plan.orders) and any(s.short_pick for s in plan.orders)
    assert any(s.ret is not None for s in plan.orders) and plan.purchase_orders
    short = make_plan(3, 10, 10_000, 2.0)
    assert short.orders and all(s.at < 10 for s in short.orders)  # the time bound


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    env = {"OMNIFLOW_EXCEPTION_SLA_SECONDS": json.dumps(SLAS), "OMNIFLOW_LOG_LEVEL": "WARNING"}
    s = DevStack(tmp_path_factory.mktemp("simulate") / "data", extra_env=env).start()
    yield s
    s.stop()


async def _orders_by_channel(admin: AsyncOmniflowClient, tag: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    for channel in ("web", "marketplace", "b2b", "store"):
        async for order in admin.iter_orders(channel=channel, limit=500):
            seen[channel] += order.external_id.startswith(f"{tag}-")
    return seen


@pytest.mark.e2e
async def test_a_bounded_run_counts_what_the_api_reads_back(stack: DevStack) -> None:
    opts = Options(stack.api, stack.admin_key, seed=5, duration=60.0, orders=30, rate=2.0, tag="t5")
    plan = make_plan(opts.seed, opts.duration, opts.orders, opts.rate)
    outcome = await simulate(opts)
    t, api = outcome.tally, outcome.api
    async with AsyncOmniflowClient(stack.api, stack.admin_key) as admin:
        by_channel = await _orders_by_channel(admin, "t5")
        live_keys = [
            k
            async for k in admin.iter_api_keys(limit=500)
            if k.name.startswith(KEY_NAME) and not k.revoked_at
        ]
        resolved = [
            e async for e in admin.iter_exceptions(status="resolved", limit=500) if "t5-" in e.subject.id
        ]
    planned = Counter(s.channel for s in plan.orders)
    assert sum(planned.values()) == len(plan.orders) <= 30  # the --orders bound
    # A flash buyer the stock cannot cover is turned away at intake (409, no order written).
    turned_away = {ch: t[f"placed:{ch}!409"] for ch in planned}
    assert sum(turned_away.values()) <= sum(s.flash for s in plan.orders)
    assert {ch: t[f"placed:{ch}"] + turned_away[ch] for ch in planned} == dict(planned)
    assert {ch: t[f"placed:{ch}"] for ch in planned} == {ch: by_channel[ch] for ch in planned}
    assert t["cancelled"] == api["cancelled_by:customer"]
    assert t["shipped"] == api["shipments_shipped"] > 0
    desk = sum(n for k, n in t.items() if k.startswith("decided:") and "!" not in k)
    assert desk == api["decided"] == sum("omniflow simulate" in (e.resolved_by or "") for e in resolved)
    assert t["po_created"] == api["pos"] and t["returns_created"] == api["returns"]
    assert outcome.stopped in ("done", "duration") and outcome.last_step <= opts.duration
    assert live_keys == []  # the run's keys are revoked at its end


@pytest.mark.e2e
async def test_the_run_stops_at_its_duration(stack: DevStack) -> None:
    opts = Options(stack.api, stack.admin_key, seed=6, duration=8.0, orders=1000, rate=1.0, tag="t6")
    plan = make_plan(opts.seed, opts.duration, opts.orders, opts.rate)
    outcome = await simulate(opts)
    placed = sum(n for k, n in outcome.tally.items() if k.startswith("placed:") and "!" not in k)
    assert (
        0 < placed <= len(plan.orders) < 1000
    )  # arrivals only before the end (a slow box may miss the last)
    assert outcome.stopped == "duration"  # orders still open at the end: the clock stopped it
    assert outcome.last_step <= opts.duration  # no step started after it
    async with AsyncOmniflowClient(stack.api, stack.admin_key) as admin:
        assert sum((await _orders_by_channel(admin, "t6")).values()) == placed
