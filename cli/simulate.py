"""`omniflow simulate`: realistic traffic through the API client, so the console, the
exception queues and the Temporal UI fill with life.

1. The plan (cli/simulate_plan.py) is made from the seed alone, before anything is sent.
2. Setup, through the API with the admin key, idempotently: the demo's catalog (the same
   records `omniflow dev` loads: creating them again changes nothing), a `store` channel and
   the flash-sale SKU; the keys the actors need (channel keys, a warehouse key, an approver
   key; the previous run's simulator keys are revoked first, these at the end); and opening
   stock sized from the plan, each adjustment keyed by the run's tag.
3. The run: every story of the plan as a task on the clock, with the warehouse floor, the
   approver desk and a watcher beside them (cli/simulate_actors.py, cli/simulate_office.py),
   until every story is done or `duration` is up or Ctrl-C (a second Ctrl-C stops at once):
   no step starts after that, steps in flight finish.
4. The summary: what the simulator did, next to what the API reads back (cli/simulate_report.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.live import Live

from cli.demo import CHANNELS, LOCATIONS, SKUS, SUPPLIER_TERMS, SUPPLIERS
from cli.simulate_actors import Cast, Clock, Floor, Run, order_story
from cli.simulate_office import Desk, purchase_story
from cli.simulate_plan import FLASH_SKU, LOTS, MIXES, Plan, make_plan
from cli.simulate_report import LiveView, Outcome, read_back, safe_read_back, table
from client import (
    ApiError,
    AsyncOmniflowClient,
    NewChannel,
    NewLocation,
    NewSku,
    NewSupplier,
    RetryPolicy,
    StockAdjustment,
    SupplierTerms,
)

KEY_NAME = "omniflow simulate"  # every key the simulator makes is named so (and revoked by it)
STORE_CHANNEL = NewChannel(
    code="store",
    type="pos",
    name="San Francisco store (POS)",
    locations=["STORE-SF"],
    sourcing_rule="priority",
)


@dataclass(frozen=True)
class Options:
    api_url: str
    api_key: str
    seed: int = 1
    duration: float = 300.0
    orders: int = 500
    rate: float = 2.0
    tag: str = ""  # in every business id of the run; default sim<seed>-<time>


async def simulate(opts: Options, console: Console | None = None) -> Outcome:
    """Plan, set up, run, read back; the summary table goes to `console` when given."""
    plan = make_plan(opts.seed, opts.duration, opts.orders, opts.rate)
    tag = opts.tag or f"sim{opts.seed}-{datetime.now(UTC):%H%M%S}"
    retry = RetryPolicy(attempts=4, timeout=30.0)
    async with AsyncOmniflowClient(opts.api_url, opts.api_key, retry=retry, timeout=30.0) as admin:
        await ensure_catalog(admin)
        cast = await make_cast(admin)
        try:
            await put_stock(admin, plan, tag)
            since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
            run = Run(plan, tag, cast, Clock(plan.duration))
            await _run(run, since, console)
            api = await read_back(run, since)
        finally:
            await revoke_keys(admin)
    outcome = Outcome(tag, run.tally, api, run.clock.reason, run.clock.now(), run.clock.last_step)
    if console is not None:
        console.print(
            table(run, api, f"omniflow simulate: run {tag} (seed {opts.seed}), stopped: {outcome.stopped}")
        )
    return outcome


# -- setup -------------------------------------------------------------------------------------


async def _created(call: Awaitable[Any]) -> None:
    """A create by code: new (201), the same record (200), or one someone changed (409),
    which the run uses as it is."""
    try:
        await call
    except ApiError as exc:
        if exc.status != 409:
            raise


async def ensure_catalog(admin: AsyncOmniflowClient) -> None:
    """The demo's SKUs, locations, channels and suppliers with their terms, plus the store
    channel and the flash-sale SKU."""
    for row in [*SKUS, FLASH_SKU]:
        await _created(admin.create_sku(NewSku.model_validate(row)))
    for row in SUPPLIERS:
        await _created(admin.create_supplier(NewSupplier.model_validate(row)))
    for row in LOCATIONS:
        await _created(admin.create_location(NewLocation.model_validate(row)))
    for channel in [*(NewChannel.model_validate(c) for c in CHANNELS), STORE_CHANNEL]:
        await _created(admin.create_channel(channel))
    items: dict[tuple[str, str], dict[str, Any]] = {
        (s["code"], i["sku"]): i for s in SUPPLIERS for i in s["items"]
    }
    for (supplier, sku), extra in SUPPLIER_TERMS.items():
        terms = {k: v for k, v in items[(supplier, sku)].items() if k != "sku"} | extra
        await admin.put_supplier_item(supplier, sku, SupplierTerms.model_validate(terms))


async def revoke_keys(admin: AsyncOmniflowClient) -> int:
    """Revoke every live key the simulator made (a run that was killed leaves its keys)."""
    mine = [
        k async for k in admin.iter_api_keys(limit=500) if k.name.startswith(KEY_NAME) and not k.revoked_at
    ]
    for key in mine:
        with contextlib.suppress(ApiError):  # revoked meanwhile
            await admin.revoke_api_key(key.id)
    return len(mine)


async def make_cast(admin: AsyncOmniflowClient) -> Cast:
    """New keys for this run's actors, each on the admin client's connections."""
    await revoke_keys(admin)
    made = {}
    for channel in (m.channel for m in MIXES):
        made[channel] = await admin.create_api_key("channel", channel=channel, name=f"{KEY_NAME} {channel}")
    for role in ("warehouse", "approver"):
        made[role] = await admin.create_api_key(role, name=f"{KEY_NAME} {role}")

    def client(name: str) -> AsyncOmniflowClient:
        return admin.with_options(api_key=made[name].key)

    return Cast(
        admin=admin,
        channels={m.channel: client(m.channel) for m in MIXES},
        warehouse=client("warehouse"),
        approver=client("approver"),
        key_ids={name: key.id for name, key in made.items()},
    )


async def put_stock(admin: AsyncOmniflowClient, plan: Plan, tag: str) -> None:
    """The plan's opening stock, once per run (keyed by the tag)."""
    for sku, location, units in plan.stock:
        lot, expires = LOTS.get(sku, ("", None))
        adjustment = StockAdjustment.model_validate(
            {
                "sku": sku,
                "location": location,
                "delta": units,
                "reason": "found",
                "lot": lot,
                "expires_at": expires,
            }
        )
        await admin.adjust_stock(adjustment, idempotency_key=f"{tag}-stock-{sku}-{location}")


# -- the run -----------------------------------------------------------------------------------


async def _run(run: Run, since: str, console: Console | None) -> None:
    stories = [asyncio.create_task(order_story(run, s)) for s in run.plan.orders]
    stories += [asyncio.create_task(purchase_story(run, s)) for s in run.plan.purchase_orders]
    view = LiveView(run)
    helpers = [
        asyncio.create_task(Floor(run).loop()),
        asyncio.create_task(Desk(run).loop()),
        asyncio.create_task(_watch(run, since, view)),
    ]
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if run.clock.stopped.is_set() and main is not None:
            main.cancel()  # the second Ctrl-C: at once
        run.clock.stop("interrupted")

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, interrupt)
    live = (
        Live(view.update(), console=console, refresh_per_second=2, transient=True) if _tty(console) else None
    )
    try:
        with live or contextlib.nullcontext():
            while run.clock.running() and not all(t.done() for t in stories):
                await asyncio.wait(stories, timeout=0.5)
                if live is not None:
                    live.update(view.update())
            run.clock.stop(run.clock.reason or "done")
            await asyncio.gather(*stories, *helpers)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _watch(run: Run, since: str, view: LiveView, every: float = 3.0) -> None:
    """What the API says about the run, every few seconds (the return stories wait on it)."""
    while run.clock.running():
        view.api = await safe_read_back(run, since) or view.api
        await run.clock.until(run.clock.now() + max(every, len(run.orders) / 100))


def _tty(console: Console | None) -> bool:
    return console is not None and console.is_terminal
