"""The chaos bench's load (bench/chaos.py describes the run): client threads placing orders
through the API client, each retrying its order with the same Idempotency-Key until it is
taken (on the next API replica when there are several); a restocker; warehouse threads
picking, packing and shipping. The thread that kills processes is bench/chaos_kills.py's."""

from __future__ import annotations

import random
import re
import threading
import time
import zlib
from collections import Counter
from typing import Any

import httpx

from bench.chaos_kills import ChaosKills
from bench.chaos_report import ChaosEvent, Placed
from bench.chaos_setup import (
    CHANNELS,
    HTTP_TIMEOUT,
    LIMITED,
    OPENING_STOCK,
    RESTOCK_UNITS,
    SKUS,
    ChaosConfig,
    order_body,
)
from bench.common import CHANNELS as CHANNEL_LIST
from bench.common import LOCATIONS, create_catalog
from bench.stack import DevStack
from client import (
    ApiError,
    Attempt,
    OmniflowClient,
    Order,
    Package,
    PackLine,
    PickLine,
    RetryPolicy,
    StockAdjustment,
)
from client import operations as ops

PACKAGE = {"weight_g": 800, "length_mm": 300, "width_mm": 200, "height_mm": 100}


class Chaos(ChaosKills):
    def __init__(self, stack: DevStack, cfg: ChaosConfig) -> None:
        self.stack = stack
        self.cfg = cfg
        self.tag = f"R{int(time.time()) % 100000}"
        self.lock = threading.Lock()
        self.placed: list[Placed] = []
        self.not_placed: list[str] = []
        self.turned_away: list[str] = []  # an order without backorders the stock could not cover
        self.stocked: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.server_errors: list[str] = []
        self.events: list[ChaosEvent] = []
        self.ship_oks: Counter[str] = Counter()  # shipment id -> 200 answers to /ship
        self.stop_orders = threading.Event()
        self.stop_warehouse = threading.Event()
        self.t0 = time.monotonic()
        self.give_up_at = float("inf")
        self.keys: dict[str, str] = {}
        self.thread_errors: list[str] = []
        self.back_at: dict[str, float] = {}  # worker / api -> when the last one killed was back
        self.backlog = [0] * cfg.pickers  # shipments each picker is working on

    # -- HTTP ------------------------------------------------------------------------

    def client(self, key: str | None = None, *, retrying: bool = False) -> OmniflowClient:
        """A client that counts every answer (or transport error) by route. `retrying`:
        until a 2xx or another 4xx, retried on no answer, 5xx, 429 and 409 "in flight" (the
        same write, so the same Idempotency-Key) until `give_up_at`, with the back-off this
        bench has always measured with (not Retry-After). Not `retrying` (the warehouse's
        scanners, which look again next round): with replicas, a connection refused by a dead
        one is tried once on the next (nothing was sent), nothing else. Writes carry a key
        only where the API requires one, as the channels and the scanners here always did."""
        deadline = None if self.give_up_at == float("inf") else self.give_up_at
        statuses = frozenset({429, *range(500, 600)})
        policy = RetryPolicy(
            attempts=None,
            timeout=None,
            deadline=deadline,
            initial_delay=0.2,
            max_delay=2.0,
            statuses=statuses,
            respect_retry_after=False,
        )
        other_replica = RetryPolicy(attempts=self.stack.replicas, initial_delay=0.0, statuses=frozenset())
        return OmniflowClient(
            self.stack.apis,  # with replicas: a retry goes to the next one (client/clients.py)
            key or self.stack.admin_key,
            timeout=HTTP_TIMEOUT,
            retry=policy if retrying else (other_replica if self.stack.replicas > 1 else None),
            idempotent_writes=False,
            observer=self.count,
        )

    def count(self, attempt: Attempt) -> None:
        with self.lock:
            self.responses[f"{attempt.method} {attempt.route} {attempt.outcome}"] += 1
            r = attempt.response
            if r is not None and r.status_code >= 500 and len(self.server_errors) < 40:
                self.server_errors.append(
                    f"t={self.now():.1f}s {attempt.method} {attempt.route} {r.status_code} {r.text[:300]}"
                )

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- set-up ----------------------------------------------------------------------

    def setup(self) -> None:
        with self.client() as admin:
            create_catalog(admin, SKUS, LOCATIONS, CHANNEL_LIST)
            for role, channel in [("warehouse", None), *(("channel", c) for c in CHANNELS)]:
                name = f"chaos {role} {channel or ''}".strip()
                reply = admin.send(ops.create_api_key(role, channel=channel, name=name))
                assert reply.status == 201
                self.keys[channel or role] = reply.value.key
        for n, (sku, location, units) in enumerate(OPENING_STOCK):
            self.adjust(f"{self.tag}-open-{n}", sku, location, units, "initial")

    def adjust(self, key: str, sku: str, location: str, delta: int, reason: str) -> bool:
        adjustment = StockAdjustment(sku=sku, location=location, delta=delta, reason=reason)
        outcome = "no answer"
        with self.client(retrying=True) as admin:
            try:
                admin.adjust_stock(adjustment, idempotency_key=key)
            except ApiError as exc:
                outcome = str(exc.status)
            except httpx.HTTPError:
                pass
            else:
                with self.lock:
                    self.stocked[sku] += delta
                return True
        self.thread_errors.append(f"adjustment {key} not confirmed: {outcome}")
        return False

    # -- load ------------------------------------------------------------------------

    def client_loop(self, i: int) -> None:
        rng = random.Random(self.cfg.seed * 1000 + i)
        apis = {c: self.client(self.keys[c], retrying=True) for c in CHANNELS}
        n = 0
        every = self.cfg.clients / self.cfg.rate if self.cfg.rate > 0 else 0.0
        next_at = time.monotonic() + rng.uniform(0, every)
        try:
            while not self.stop_orders.wait(max(0.0, next_at - time.monotonic())):
                next_at = max(next_at + every, time.monotonic())
                channel = CHANNELS[(i + n) % len(CHANNELS)]
                self.place(apis[channel], rng, channel, f"{self.tag}-{i}-{n}")
                n += 1
        except Exception as exc:  # a bug in this bench must not pass for a clean run
            self.thread_errors.append(f"client {i}: {type(exc).__name__}: {exc}")
        finally:
            for api in apis.values():
                api.close()

    def place(self, api: OmniflowClient, rng: random.Random, channel: str, ext: str) -> None:
        body, backorder = order_body(rng, channel, ext)
        started = time.monotonic()
        try:
            reply = api.send(ops.create_order(body, idempotency_key=f"create-{ext}"))
        except ApiError as exc:
            if exc.slug != "insufficient-stock":
                self._not_placed(ext, exc)
                return
            with self.lock:  # an answer like a refusal at sourcing, with nothing written
                self.turned_away.append(ext)
            return
        except httpx.HTTPError as exc:
            self._not_placed(ext, exc)
            return
        lines = [(ln.sku, ln.qty, ln.unit_price) for ln in body.lines]
        with self.lock:
            self.placed.append(
                Placed(
                    reply.value.id,
                    channel,
                    lines,
                    backorder,
                    started - self.t0,
                    time.monotonic() - started,
                    reply.attempts,
                )
            )

    def _not_placed(self, ext: str, exc: Exception) -> None:
        gave_up = (
            not isinstance(exc, ApiError) or exc.status >= 500 or exc.slug == "idempotency-key-in-flight"
        )
        with self.lock:
            self.not_placed.append(f"{ext}: {'gave up' if gave_up else exc}"[:260])

    def restock_loop(self) -> None:
        n = 0
        while not self.stop_orders.wait(self.cfg.restock_every):
            location = ("DC-EAST", "DC-WEST")[n % 2]
            self.adjust(f"{self.tag}-restock-{n}", LIMITED, location, RESTOCK_UNITS, "found")
            n += 1

    # -- the warehouse ---------------------------------------------------------------

    def warehouse_loop(self, picker: int) -> None:
        """One picker: its share of the shipments (by a hash of the id, so no two pickers
        work one parcel), from the pick waves, plus a sweep for parcels left picked or packed."""
        api = self.client(self.keys["warehouse"])
        open_shipments: dict[str, str] = {}  # id -> last status seen
        last_sweep = 0.0
        try:
            while not self.stop_warehouse.is_set():
                self.find_work(api, picker, open_shipments, sweep=time.monotonic() - last_sweep > 5.0)
                if time.monotonic() - last_sweep > 5.0:
                    last_sweep = time.monotonic()
                self.backlog[picker] = len(open_shipments)
                for sid in list(open_shipments):
                    if self.stop_warehouse.is_set():
                        break
                    status = self.fulfil(api, sid)
                    if status in ("shipped", "cancelled", "gone"):
                        open_shipments.pop(sid, None)
                    elif status:
                        open_shipments[sid] = status
                time.sleep(0.3)
        except Exception as exc:
            self.thread_errors.append(f"warehouse {picker}: {type(exc).__name__}: {exc}")
        finally:
            api.close()

    def find_work(
        self, api: OmniflowClient, picker: int, open_shipments: dict[str, str], sweep: bool
    ) -> None:
        """This picker's shipments in the pick waves; with `sweep`, also the parcels a crash
        left picked or packed (from the open orders)."""

        def mine(sid: str) -> bool:
            return zlib.crc32(sid.encode()) % self.cfg.pickers == picker

        try:
            waves = api.pick_tasks().items
        except (ApiError, httpx.HTTPError):
            waves = []
        for shp in (s for wave in waves for s in wave.shipments):
            if mine(shp.id):
                open_shipments.setdefault(shp.id, "allocated")
        if sweep:
            for order in self.orders(api, ("allocated", "in_fulfillment", "partially_shipped")):
                for s in order.shipments:
                    if s.kind == "stock" and s.status in ("allocated", "picked", "packed") and mine(s.id):
                        open_shipments.setdefault(s.id, s.status)

    def fulfil(self, api: OmniflowClient, sid: str) -> str | None:
        """Take one shipment as far as it goes now (pick → pack → ship); its status after,
        or None when the stack did not answer (the next round tries again)."""
        try:
            shp = api.get_shipment(sid)
        except ApiError as exc:
            return "gone" if exc.status == 404 else None
        except httpx.HTTPError:
            return None
        for _ in range(3):
            status = shp.status
            try:
                if status == "allocated":
                    shp = api.pick_shipment(
                        sid, [PickLine(sku=ln.sku, qty=ln.qty) for ln in shp.lines if ln.qty]
                    )
                elif status == "picked":
                    picked = [PackLine(sku=ln.sku, qty=ln.picked) for ln in shp.lines if ln.picked]
                    shp = api.pack_shipment(sid, [Package(**PACKAGE, lines=picked)])
                elif status == "packed":
                    shp = api.ship_shipment(sid, carrier="UPS", tracking=f"1Z-{sid}")
                    with self.lock:
                        self.ship_oks[sid] += 1
                else:
                    return str(status)
            except (ApiError, httpx.HTTPError):
                return str(status)  # refused (moved on meanwhile) or no answer: look again next round
        return str(shp.status)

    def orders(self, api: OmniflowClient, statuses: tuple[str, ...] | None = None) -> list[Order]:
        """Every order (of these statuses), all pages; what could not be read is left out."""
        out: list[Order] = []
        for status in statuses or (None,):
            try:
                for order in api.iter_orders(status=status, limit=500):
                    out.append(order)
            except (ApiError, httpx.HTTPError):
                continue
        return out

    def progress_loop(self, say: Any, every: float = 5.0) -> None:
        while not self.stop_warehouse.wait(every):
            with self.lock:
                errors = sum(v for k, v in self.responses.items() if not re.search(r" [1-4]\d\d$", k))
                say(
                    f"  t={self.now():5.1f}s placed {len(self.placed)}, shipped {sum(self.ship_oks.values())}, "
                    f"warehouse backlog {sum(self.backlog)}, 5xx/no answer {errors}"
                )
