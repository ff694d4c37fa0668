"""Chaos: orders keep flowing while the worker is SIGKILLed every few seconds, the Temporal
dev server is killed once and Postgres is crashed once; at the end nothing is lost, nothing
doubled, nothing oversold, and the inventory and ledger checks are clean.

    python -m bench.chaos --seconds 60 --clients 4

The whole stack runs through `omniflow dev` on free ports (bench/stack.py). Over HTTP, as
channels and a warehouse use it:

- client threads place orders from three channels at `--rate` orders per second (each
  retries its order with the same Idempotency-Key until it gets a 2xx, as a channel's
  integration does); 60 % are tees and mugs (plenty), 15 % a limited SKU without backorders
  (cancelled by sourcing once it is gone), 25 % the limited SKU with backorders, alone or
  with a tee (they wait in `awaiting_stock`, or ship the tee and wait for the rest, until a
  restock wakes them);
- a restocker adds a few units of the limited SKU now and then;
- `--pickers` warehouse threads pick, pack and ship every open shipment, and take up again
  the ones a crash left `picked` or `packed`;
- the chaos thread SIGKILLs the worker every `--kill-every` seconds (the `omniflow dev`
  supervisor restarts it), SIGKILLs the Temporal dev server once (restarted by the
  supervisor; workflows persist in its SQLite file) and stops Postgres with
  `pg_ctl -m immediate` (a crash: WAL recovery on start) once, starting it again on the same
  data directory and port after `--pg-down` seconds.

Then no new orders; the warehouse works until every order is `completed`, `cancelled` or in
an expected wait (`awaiting_stock`, `on_hold`, or partly shipped with the rest backordered).
Verified and printed:

- lost: placed (the API answered 2xx) but no order row or no workflow;
- doubled: a shipment with more than one `shipped` event, `shipped` events ≠ shipped
  shipments, a line shipped beyond its quantity, or captured ≠ the shipped part's total;
- oversold: per SKU, units shipped + reserved beyond what was ever put in stock, or a
  negative / over-reserved balance; drift: sellable on hand ≠ stocked − shipped;
- stuck: an order in no final or expected state when the settle time runs out, or whose
  workflow disagrees with its row (failed, terminated, still running when done);
- `omniflow inventory check` and `omniflow ledger check` against the stack's database.

Results: a table, and bench/results/chaos.json. Exit code 1 when anything is lost,
doubled, oversold, drifted or stuck, a check has findings, or the stack died."""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from rich.console import Console
from rich.table import Table

from bench.common import NYC, machine, percentile, write_json
from bench.stack import DevStack
from domain.orders import PricedLine, shipment_charge
from runtime.embedded_pg import EmbeddedPostgres

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)

CHANNELS = ("web", "market", "edi")
LIMITED = "LTD"
CATALOG: list[tuple[str, dict[str, Any]]] = [
    ("/v1/skus", {"code": "TEE", "name": "Tee", "unit_cost": 600, "price": 2500}),
    ("/v1/skus", {"code": "MUG", "name": "Mug", "unit_cost": 350, "price": 1600}),
    ("/v1/skus", {"code": LIMITED, "name": "Limited print", "unit_cost": 4000, "price": 9900}),
    ("/v1/locations", {"code": "DC-EAST", "name": "East", "type": "dc", "lat": 40.7, "lon": -74.2, "ship_cost": 450,
                       "priority": 1}),
    ("/v1/locations", {"code": "DC-WEST", "name": "West", "type": "dc", "lat": 34.1, "lon": -117.7, "ship_cost": 380,
                       "priority": 2}),
    ("/v1/channels", {"code": "web", "type": "web", "locations": ["DC-EAST", "DC-WEST"], "sourcing_rule": "nearest"}),
    ("/v1/channels", {"code": "market", "type": "marketplace", "locations": ["DC-EAST", "DC-WEST"],
                      "sourcing_rule": "cheapest"}),
    ("/v1/channels", {"code": "edi", "type": "b2b", "locations": ["DC-EAST"], "sourcing_rule": "priority"}),
]  # fmt: skip
# (sku, location, units): plenty of tees and mugs, a handful of the limited print.
OPENING_STOCK = [("TEE", "DC-EAST", 5000), ("TEE", "DC-WEST", 5000), ("MUG", "DC-EAST", 5000),
                 ("MUG", "DC-WEST", 5000), (LIMITED, "DC-EAST", 6), (LIMITED, "DC-WEST", 4)]  # fmt: skip
RESTOCK_UNITS = 2
OPEN_STATUSES = ("received", "on_hold", "awaiting_stock", "allocated", "in_fulfillment", "partially_shipped",
                 "shipped")  # fmt: skip
EXPECTED_WAITS = ("awaiting_stock", "on_hold")
STACK_ENV = {
    # A backorder re-checks stock every 5 s (not hourly), so one a restock missed is not left behind.
    "OMNIFLOW_BACKORDER_RECHECK_SECONDS": "5",
    # A warehouse update waits 5 s for the worker before the API answers 503 (the scanner retries).
    "OMNIFLOW_RPC_TIMEOUT_SECONDS": "5",
    # A create that died with Postgres leaves its Idempotency-Key in flight (nothing can delete it
    # while the database is down); the channel's retry is answered 409 until the key is taken over
    # after this many seconds (default 60, which would stall every such order for a minute).
    "OMNIFLOW_IDEMPOTENCY_IN_FLIGHT_SECONDS": "10",
}
HTTP_TIMEOUT = 30.0


@dataclass
class ChaosConfig:
    seconds: float = 60.0  # of order load (and chaos)
    clients: int = 4  # order-placing threads
    rate: float = 5.0  # orders per second, all clients together (paced; a retry delays its client)
    pickers: int = 2  # warehouse threads (each works its own share of the shipments)
    kill_every: float = 5.0  # SIGKILL the worker this often
    temporal_at: float = 0.3  # kill the Temporal dev server at this fraction of `seconds`
    postgres_at: float = 0.6  # crash Postgres at this fraction of `seconds`
    pg_down: float = 3.0  # seconds Postgres stays down
    pg_stop_mode: str = "immediate"  # pg_ctl stop mode: immediate = a crash, fast = a clean restart
    restock_every: float = 8.0  # add RESTOCK_UNITS of the limited SKU this often
    settle_seconds: float = 150.0  # after the load, wait at most this long for every order to settle
    seed: int = 7
    data_dir: Path | None = None  # default: a temporary directory, removed afterwards

    def schedule(self) -> list[tuple[float, str]]:
        """(seconds after the start of the load, event), in time order. Worker kills that
        would land within 1.5 s of the Temporal or Postgres event move past it, so each kind
        of failure is seen on its own (the next kill is due in `kill_every` anyway). When it
        runs, a kill also waits until the previous worker has been back `kill_every` seconds:
        the supervisor's restart delay grows to 5 s, so kills every 5 s on the clock would
        leave no worker running at all."""
        events = [
            (self.seconds * self.temporal_at, "temporal"),
            (self.seconds * self.postgres_at, "postgres"),
        ]
        t = self.kill_every
        while t < self.seconds - 1.0:
            for at, _ in events[:2]:
                if abs(t - at) < 1.5:
                    t = at + 1.5
            if t < self.seconds - 1.0:
                events.append((t, "worker"))
            t += self.kill_every
        return sorted(events)


@dataclass
class Placed:
    id: str
    channel: str
    lines: list[tuple[str, int, int]]  # (sku, qty, unit_price)
    allow_backorder: bool
    at: float  # seconds into the load
    latency_s: float
    attempts: int


@dataclass
class ChaosEvent:
    kind: str
    at: float  # seconds into the load
    detail: str = ""
    back_after_s: float | None = None  # until the killed thing answers again
    ready_after_s: float | None = None  # until /readyz says ready again


@dataclass
class Report:
    config: dict[str, Any]
    placed: int = 0
    not_placed: int = 0  # gave up (never a 2xx) or refused with a 4xx
    completed: int = 0
    cancelled: int = 0
    waiting: dict[str, int] = field(default_factory=dict)  # by status
    lost: int = 0
    doubled: int = 0
    oversold: int = 0
    drift: int = 0
    stuck: int = 0
    stuck_orders: list[dict[str, str]] = field(default_factory=list)  # id, status, workflow, why
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    stack_alive: bool = True
    events: list[ChaosEvent] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # from the supervisor's log
    responses: dict[str, int] = field(default_factory=dict)  # "POST /v1/orders 503": n
    server_errors: list[str] = field(default_factory=list)  # a sample of 5xx bodies, with the time
    stock: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # sku -> stocked, shipped, reserved, on_hand
    capture_latency_ms: dict[str, float] = field(default_factory=dict)
    placed_per_s: float = 0.0
    shipments_shipped: int = 0
    settle_s: float = 0.0
    problems: list[str] = field(default_factory=list)  # one line per lost / doubled / oversold / stuck item
    seconds_total: float = 0.0
    machine: dict[str, Any] = field(default_factory=machine)

    @property
    def checks_clean(self) -> bool:
        return bool(self.checks) and all(c["findings"] == 0 and c["exit"] == 0 for c in self.checks.values())

    @property
    def ok(self) -> bool:
        return (
            self.stack_alive
            and self.placed > 0
            and self.lost == self.doubled == self.oversold == self.drift == self.stuck == 0
            and self.checks_clean
        )

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["checks_clean"] = self.checks_clean
        return out


# -- processes -------------------------------------------------------------------------


def _children(stack: DevStack) -> list[psutil.Process]:
    assert stack.proc is not None
    try:
        return psutil.Process(stack.proc.pid).children()
    except psutil.Error:
        return []


def _find_child(
    stack: DevStack, matches: Callable[[list[str]], bool], timeout: float = 30.0
) -> psutil.Process | None:
    """The running child of `omniflow dev` whose command line `matches` (waiting while the
    supervisor restarts one that died)."""
    deadline = time.monotonic() + timeout
    while True:
        for p in _children(stack):
            try:
                if matches(p.cmdline()) and p.status() != "zombie":
                    return p
            except psutil.Error:
                continue
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def worker_process(stack: DevStack, timeout: float = 30.0) -> psutil.Process | None:
    return _find_child(stack, lambda argv: argv[-2:] == ["-m", "worker"], timeout)


def temporal_process(stack: DevStack, timeout: float = 30.0) -> psutil.Process | None:
    words = ("temporal", "server", "start-dev")
    return _find_child(stack, lambda argv: all(any(w in a for a in argv) for w in words), timeout)


def _port_open(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _embedded_pg(stack: DevStack) -> EmbeddedPostgres:
    """The stack's own Postgres (`omniflow dev` keeps it in <data-dir>/pg), driven with its
    own pg_ctl (as the unprivileged system user when we are root, as omniflow dev does)."""
    pg = EmbeddedPostgres(stack.data_dir / "pg", stack.pg_port)
    pg.data_dir = pg.data_dir.resolve()
    pg._prepare_user()
    return pg


def stop_postgres(stack: DevStack, mode: str = "immediate") -> None:
    pg = _embedded_pg(stack)
    out = pg._run("pg_ctl", "-D", str(pg.data_dir), "-m", mode, "-w", "-t", "30", "stop", check=False)
    if out.returncode != 0:
        raise RuntimeError(f"pg_ctl stop failed: {out.stdout} {out.stderr}")


def start_postgres(stack: DevStack) -> None:
    """Start it again on the same data directory and port, with the options omniflow dev uses."""
    _embedded_pg(stack).start()


# -- the run ---------------------------------------------------------------------------


class Chaos:
    def __init__(self, stack: DevStack, cfg: ChaosConfig) -> None:
        self.stack = stack
        self.cfg = cfg
        self.tag = f"R{int(time.time()) % 100000}"
        self.lock = threading.Lock()
        self.placed: list[Placed] = []
        self.not_placed: list[str] = []
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
        self.worker_back_at = 0.0  # seconds into the load when the last killed worker was back
        self.backlog = [0] * cfg.pickers  # shipments each picker is working on

    # -- HTTP ------------------------------------------------------------------------

    def client(self, key: str | None = None) -> httpx.Client:
        token = key or self.stack.admin_key
        return httpx.Client(base_url=self.stack.api, headers={"Authorization": f"Bearer {token}"},
                            timeout=HTTP_TIMEOUT)  # fmt: skip

    def now(self) -> float:
        return time.monotonic() - self.t0

    def request(self, http: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """One request; counts its answer (or its transport error) by route. None when no
        answer came (connection refused, reset, timeout)."""
        route = re.sub(r"/(order|shipment)s/[^/]+", r"/\1s/{id}", path.split("?")[0])
        try:
            r = http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            with self.lock:
                self.responses[f"{method} {route} {type(exc).__name__}"] += 1
            return None
        with self.lock:
            self.responses[f"{method} {route} {r.status_code}"] += 1
            if r.status_code >= 500 and len(self.server_errors) < 40:
                self.server_errors.append(
                    f"t={self.now():.1f}s {method} {route} {r.status_code} {r.text[:300]}"
                )
        return r

    def retrying(
        self, http: httpx.Client, method: str, path: str, ok: tuple[int, ...], **kw: Any
    ) -> tuple[httpx.Response | None, int]:
        """Until an `ok` answer: retried on no answer, 5xx, 429 and 409 "in flight" (the
        same request, so the same Idempotency-Key). Another answer is returned as it is;
        None if `give_up_at` passes first. With the number of attempts."""
        attempt = 0
        while True:
            attempt += 1
            r = self.request(http, method, path, **kw)
            if r is not None:
                if r.status_code in ok:
                    return r, attempt
                in_flight = r.status_code == 409 and "idempotency-key-in-flight" in r.text
                if not (r.status_code >= 500 or r.status_code == 429 or in_flight):
                    return r, attempt
            if time.monotonic() > self.give_up_at:
                return None, attempt
            time.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)) * random.uniform(0.7, 1.3))

    # -- set-up ----------------------------------------------------------------------

    def setup(self) -> None:
        with self.client() as admin:
            for path, body in CATALOG:
                r = admin.post(path, json=body)
                assert r.status_code in (200, 201), r.text
            for role, channel in [("warehouse", None), *(("channel", c) for c in CHANNELS)]:
                body = {"role": role, "name": f"chaos {role} {channel or ''}".strip(),
                        **({"channel": channel} if channel else {})}  # fmt: skip
                r = admin.post("/v1/api-keys", json=body)
                assert r.status_code == 201, r.text
                self.keys[channel or role] = r.json()["key"]
        for n, (sku, location, units) in enumerate(OPENING_STOCK):
            self.adjust(f"{self.tag}-open-{n}", sku, location, units, "initial")

    def adjust(self, key: str, sku: str, location: str, delta: int, reason: str) -> bool:
        body = {"sku": sku, "location": location, "status": "sellable", "delta": delta, "reason": reason}
        with self.client() as admin:
            r, _ = self.retrying(admin, "POST", "/v1/inventory/adjustments", (200, 201), json=body,
                              headers={"Idempotency-Key": key})  # fmt: skip
        if r is not None and r.status_code in (200, 201):
            with self.lock:
                self.stocked[sku] += delta
            return True
        self.thread_errors.append(f"adjustment {key} not confirmed: {r.status_code if r else 'no answer'}")
        return False

    # -- load ------------------------------------------------------------------------

    def order_body(self, rng: random.Random, channel: str, ext: str) -> tuple[dict[str, Any], bool]:
        r = rng.random()
        backorder = True
        if r < 0.6:
            lines = [("TEE", rng.randint(1, 3), 2500)] + ([("MUG", 1, 1600)] if rng.random() < 0.5 else [])
        elif r < 0.75:
            lines, backorder = [(LIMITED, rng.randint(1, 2), 9900)], False
        elif r < 0.9:
            lines = [(LIMITED, 1, 9900), ("TEE", 1, 2500)]
        else:
            lines = [(LIMITED, 1, 9900)]
        body = {
            "channel": channel, "external_id": ext, "customer": {"id": f"c-{ext}", "email": "chaos@example.com"},
            "ship_to": NYC, "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines],
            "shipping_amount": 500, "tax_amount": 300, "allow_backorder": backorder,
            "payment": {"method": "card", "status": "authorized", "reference": f"psp-{ext}",
                        "amount": sum(q * p for _, q, p in lines) + 800},
        }  # fmt: skip
        return body, backorder

    def client_loop(self, i: int) -> None:
        rng = random.Random(self.cfg.seed * 1000 + i)
        https = {c: self.client(self.keys[c]) for c in CHANNELS}
        n = 0
        every = self.cfg.clients / self.cfg.rate if self.cfg.rate > 0 else 0.0
        next_at = time.monotonic() + rng.uniform(0, every)
        try:
            while not self.stop_orders.wait(max(0.0, next_at - time.monotonic())):
                next_at = max(next_at + every, time.monotonic())
                channel = CHANNELS[(i + n) % len(CHANNELS)]
                ext = f"{self.tag}-{i}-{n}"
                body, backorder = self.order_body(rng, channel, ext)
                started = time.monotonic()
                r, attempts = self.retrying(https[channel], "POST", "/v1/orders", (200, 202), json=body,
                                  headers={"Idempotency-Key": f"create-{ext}"})  # fmt: skip
                if r is not None and r.status_code in (200, 202):
                    lines = [(ln["sku"], ln["qty"], ln["unit_price"]) for ln in body["lines"]]
                    with self.lock:
                        self.placed.append(Placed(r.json()["id"], channel, lines, backorder, started - self.t0,
                                                  time.monotonic() - started, attempts))  # fmt: skip
                else:
                    with self.lock:
                        self.not_placed.append(
                            f"{ext}: {r.status_code if r else 'gave up'} {r.text[:200] if r else ''}"
                        )
                n += 1
        except Exception as exc:  # a bug in this bench must not pass for a clean run
            self.thread_errors.append(f"client {i}: {type(exc).__name__}: {exc}")
        finally:
            for h in https.values():
                h.close()

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
        http = self.client(self.keys["warehouse"])
        open_shipments: dict[str, str] = {}  # id -> last status seen

        def mine(sid: str) -> bool:
            return zlib.crc32(sid.encode()) % self.cfg.pickers == picker

        last_sweep = 0.0
        try:
            while not self.stop_warehouse.is_set():
                r = self.request(http, "GET", "/v1/pick-tasks")
                if r is not None and r.status_code == 200:
                    for wave in r.json()["items"]:
                        for shp in wave["shipments"]:
                            if mine(shp["id"]):
                                open_shipments.setdefault(shp["id"], "allocated")
                if time.monotonic() - last_sweep > 5.0:  # parcels a crash left picked or packed
                    last_sweep = time.monotonic()
                    for order in self.orders(http, ("allocated", "in_fulfillment", "partially_shipped")):
                        for shp in order["shipments"]:
                            busy = shp["status"] in ("allocated", "picked", "packed")
                            if shp["kind"] == "stock" and busy and mine(shp["id"]):
                                open_shipments.setdefault(shp["id"], shp["status"])
                self.backlog[picker] = len(open_shipments)
                for sid in list(open_shipments):
                    if self.stop_warehouse.is_set():
                        break
                    status = self.fulfil(http, sid)
                    if status in ("shipped", "cancelled", "gone"):
                        open_shipments.pop(sid, None)
                    elif status:
                        open_shipments[sid] = status
                time.sleep(0.3)
        except Exception as exc:
            self.thread_errors.append(f"warehouse {picker}: {type(exc).__name__}: {exc}")
        finally:
            http.close()

    def fulfil(self, http: httpx.Client, sid: str) -> str | None:
        """Take one shipment as far as it goes now (pick → pack → ship); its status after,
        or None when the stack did not answer (the next round tries again)."""
        r = self.request(http, "GET", f"/v1/shipments/{sid}")
        if r is None or r.status_code != 200:
            return "gone" if r is not None and r.status_code == 404 else None
        shp = r.json()
        for _ in range(3):
            status = shp["status"]
            if status == "allocated":
                lines = [{"sku": ln["sku"], "qty": ln["qty"]} for ln in shp["lines"] if ln["qty"]]
                r = self.request(http, "POST", f"/v1/shipments/{sid}/pick", json={"lines": lines})
            elif status == "picked":
                picked = [{"sku": ln["sku"], "qty": ln["picked"]} for ln in shp["lines"] if ln["picked"]]
                pkg = {"weight_g": 800, "length_mm": 300, "width_mm": 200, "height_mm": 100, "lines": picked}
                r = self.request(http, "POST", f"/v1/shipments/{sid}/pack", json={"packages": [pkg]})
            elif status == "packed":
                r = self.request(http, "POST", f"/v1/shipments/{sid}/ship",
                                 json={"carrier": "UPS", "tracking": f"1Z-{sid}"})  # fmt: skip
                if r is not None and r.status_code == 200:
                    with self.lock:
                        self.ship_oks[sid] += 1
            else:
                return str(status)
            if r is None or r.status_code != 200:
                return str(status)  # refused (moved on meanwhile) or no answer: look again next round
            shp = r.json()
        return str(shp["status"])

    def orders(self, http: httpx.Client, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every order (of these statuses), all pages; what could not be read is left out."""
        out: list[dict[str, Any]] = []
        for status in statuses or (None,):
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 500, **({"status": status} if status else {})}
                if cursor:
                    params["cursor"] = cursor
                r = self.request(http, "GET", "/v1/orders", params=params)
                if r is None or r.status_code != 200:
                    break
                page = r.json()
                out += page["items"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        return out

    def progress_loop(self, say: Any, every: float = 5.0) -> None:
        while not self.stop_warehouse.wait(every):
            with self.lock:
                errors = sum(v for k, v in self.responses.items() if not re.search(r" [1-4]\d\d$", k))
                say(f"  t={self.now():5.1f}s placed {len(self.placed)}, shipped {sum(self.ship_oks.values())}, "
                    f"warehouse backlog {sum(self.backlog)}, 5xx/no answer {errors}")  # fmt: skip

    # -- chaos -----------------------------------------------------------------------

    def chaos_loop(self) -> None:
        try:
            for at, kind in self.cfg.schedule():
                if kind == "worker":  # a restarted worker gets `kill_every` seconds of work first
                    at = max(at, self.worker_back_at + self.cfg.kill_every)
                if at >= self.cfg.seconds:
                    continue
                delay = at - self.now()
                if delay > 0 and self.stop_orders.wait(delay):
                    return
                if kind == "worker":
                    self.kill_worker()
                elif kind == "temporal":
                    self.kill_temporal()
                else:
                    self.crash_postgres()
        except Exception as exc:
            self.thread_errors.append(f"chaos: {type(exc).__name__}: {exc}")

    def kill_worker(self) -> None:
        p = worker_process(self.stack, timeout=10.0)
        if p is None:
            self.events.append(ChaosEvent("worker", self.now(), "no worker running (not restarted yet?)"))
            return
        at = self.now()
        p.send_signal(signal.SIGKILL)
        event = ChaosEvent("worker", at, f"SIGKILL pid {p.pid}")
        self.events.append(event)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the supervisor starts a new one (a new pid)
            new = worker_process(self.stack, timeout=1.0)
            if new is not None and new.pid != p.pid:
                event.back_after_s = round(self.now() - at, 2)
                self.worker_back_at = self.now()
                break
            time.sleep(0.05)

    def kill_temporal(self) -> None:
        p = temporal_process(self.stack, timeout=10.0)
        if p is None:
            self.events.append(ChaosEvent("temporal", self.now(), "no Temporal dev server found"))
            return
        at = self.now()
        p.send_signal(signal.SIGKILL)
        event = ChaosEvent("temporal", at, f"SIGKILL pid {p.pid}")
        self.events.append(event)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = temporal_process(self.stack, timeout=1.0)
            if new is not None and new.pid != p.pid and _port_open(self.stack.temporal_port):
                event.back_after_s = round(self.now() - at, 2)
                break
            time.sleep(0.1)
        event.ready_after_s = self.wait_ready(at)

    def crash_postgres(self) -> None:
        at = self.now()
        stop_postgres(self.stack, self.cfg.pg_stop_mode)
        event = ChaosEvent(
            "postgres", at, f"pg_ctl stop -m {self.cfg.pg_stop_mode}, down {self.cfg.pg_down:.0f}s"
        )
        self.events.append(event)
        time.sleep(self.cfg.pg_down)
        start_postgres(self.stack)
        event.back_after_s = round(self.now() - at, 2)
        event.ready_after_s = self.wait_ready(at)

    def wait_ready(self, since: float, timeout: float = 60.0) -> float | None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.stack.api, timeout=5.0) as http:
            while time.monotonic() < deadline:
                try:
                    if http.get("/readyz").status_code == 200:
                        return round(self.now() - since, 2)
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        return None

    # -- settle and verify -----------------------------------------------------------

    def settle(self, timeout: float) -> tuple[float, list[dict[str, Any]]]:
        """Wait until no order is in a state the warehouse or the worker still has to move;
        the orders still unsettled at the timeout (and the time it took)."""
        t = time.monotonic()
        unsettled: list[dict[str, Any]] = []
        with self.client() as admin:
            while time.monotonic() - t < timeout:
                unsettled = [o for o in self.orders(admin, OPEN_STATUSES) if not _settled(o)]
                if unsettled:  # an order whose workflow has ended will not move again: stuck, not slow
                    ended = asyncio.run(
                        _describe_workflows(self.stack.temporal_address, [o["id"] for o in unsettled])
                    )
                    if all(ended.get(o["id"]) not in (None, "RUNNING") for o in unsettled):
                        break
                if not unsettled:
                    break
                time.sleep(2.0)
        return time.monotonic() - t, unsettled

    def verify(self, report: Report, unsettled: list[dict[str, Any]]) -> None:
        with self.client() as admin:
            orders = {o["id"]: o for o in self.orders(admin)}
        workflows = asyncio.run(_describe_workflows(self.stack.temporal_address, [p.id for p in self.placed]))
        problems = report.problems
        stuck: set[str] = set()
        waiting: Counter[str] = Counter()
        shipped_units: Counter[str] = Counter()
        reserved_units: Counter[str] = Counter()
        for p in self.placed:
            o = orders.get(p.id)
            wf = workflows.get(p.id)
            if o is None or wf is None:
                report.lost += 1
                problems.append(f"lost {p.id}: {'no order row' if o is None else 'no workflow'}")
                continue
            status = o["status"]
            if status == "completed":
                report.completed += 1
            elif status == "cancelled":
                report.cancelled += 1
            elif _settled(o):
                waiting[status if status in EXPECTED_WAITS else f"{status} (rest backordered)"] += 1
            if (status in ("completed", "cancelled")) != (wf == "COMPLETED") or wf not in (
                "COMPLETED",
                "RUNNING",
            ):
                stuck.add(p.id)
                why = self.why(p.id)
                report.stuck_orders.append({"id": p.id, "status": status, "workflow": wf, "why": why})
                problems.append(
                    f"stuck {p.id}: order {status} but workflow {wf}" + (f" ({why})" if why else "")
                )
            for ln in o["lines"]:
                shipped_units[ln["sku"]] += ln["shipped"]
                reserved_units[ln["sku"]] += ln["reserved"]
            doubled = _doubled(o, p)
            if doubled:
                report.doubled += 1
                problems.append(f"doubled {p.id}: {'; '.join(doubled)}")
        for o in unsettled:
            if o["id"] in orders and not _settled(orders[o["id"]]) and o["id"] not in stuck:
                stuck.add(o["id"])
                report.stuck_orders.append({"id": o["id"], "status": orders[o["id"]]["status"],
                                            "workflow": workflows.get(o["id"], "-"), "why": "not settled in time"})  # fmt: skip
                problems.append(
                    f"stuck {o['id']}: {orders[o['id']]['status']} "
                    f"{[(s['id'][-3:], s['status']) for s in orders[o['id']]['shipments']]}"
                )
        for sid, n in self.ship_oks.items():
            if n > 1:
                report.doubled += 1
                problems.append(f"doubled {sid}: /ship answered 200 {n} times")
        report.stuck += len(stuck)
        report.waiting = dict(sorted(waiting.items()))
        extra = sorted(set(orders) - {p.id for p in self.placed})
        if extra:  # an order the API took but never confirmed to its channel
            problems.append(f"{len(extra)} order rows no client was told about: {extra[:5]}")
        self.verify_stock(report, shipped_units, reserved_units)

    def why(self, workflow_id: str) -> str:
        """The last activity failure the worker logged for this workflow, if any."""
        last = ""
        for line in self.stack.stderr().splitlines():
            if workflow_id in line and "Completing activity as failed" in line:
                m = re.findall(r"(\w+(?:Error|Shortage)\w*: [^\\]{0,160})", line)
                last = m[-1] if m else "an activity failed"
        return f"last activity failure: {last}" if last else ""

    def verify_stock(self, report: Report, shipped: Counter[str], reserved: Counter[str]) -> None:
        with psycopg.connect(self.stack.database_url, connect_timeout=10) as conn:
            on_hand: dict[str, Any] = dict(conn.execute(
                "SELECT sku, sum(qty) FROM stock_balance WHERE NOT is_virtual AND status = 'sellable' GROUP BY sku"
            ).fetchall())  # fmt: skip
            held: dict[str, Any] = dict(conn.execute(
                "SELECT sku, sum(reserved) FROM stock_balance WHERE NOT is_virtual GROUP BY sku").fetchall())  # fmt: skip
            bad = conn.execute(
                "SELECT sku, location, status, qty, reserved FROM stock_balance "
                "WHERE NOT is_virtual AND (qty < 0 OR reserved < 0 OR reserved > qty)"
            ).fetchall()
        for row in bad:
            report.oversold += 1
            report.problems.append(f"oversold: balance {row}")
        for sku in sorted(set(self.stocked) | set(shipped)):
            stocked, out, res = self.stocked[sku], shipped[sku], reserved[sku]
            have = int(on_hand.get(sku) or 0)
            report.stock[sku] = {"stocked": stocked, "shipped": out, "reserved": res, "on_hand": have,
                                 "held_in_balances": int(held.get(sku) or 0)}  # fmt: skip
            if out + res > stocked:
                report.oversold += out + res - stocked
                report.problems.append(f"oversold {sku}: shipped {out} + reserved {res} > stocked {stocked}")
            if have != stocked - out:
                report.drift += abs(stocked - out - have)
                report.problems.append(f"drift {sku}: on hand {have} != stocked {stocked} - shipped {out}")
            if int(held.get(sku) or 0) != res:
                report.drift += abs(int(held.get(sku) or 0) - res)
                report.problems.append(
                    f"drift {sku}: balances hold {held.get(sku)} reserved, order lines {res}"
                )


def _open_units(o: dict[str, Any]) -> int:
    return sum(ln["qty"] - ln["shipped"] - ln["cancelled"] for ln in o["lines"])


def _settled(o: dict[str, Any]) -> bool:
    """Final, or waiting for something outside the warehouse and the worker (stock, a person)."""
    status = o["status"]
    if status in ("completed", "cancelled") or status in EXPECTED_WAITS:
        return True
    busy = any(s["status"] in ("allocated", "picked", "packed", "requested") for s in o["shipments"])
    backordered = sum(ln["backordered"] for ln in o["lines"])
    return status == "partially_shipped" and not busy and backordered == _open_units(o) > 0


def _doubled(o: dict[str, Any], p: Placed) -> list[str]:
    """What says a unit, a parcel or money went out twice (or the books disagree with the parcels)."""
    out = []
    shipped_events = [e for e in o["timeline"] if e["event"] == "shipped"]
    per_shipment = Counter(e["detail"].get("shipment") for e in shipped_events)
    shipped = [s for s in o["shipments"] if s["status"] == "shipped"]
    out += [f"shipment {sid} has {n} shipped events" for sid, n in per_shipment.items() if n > 1]
    if len(shipped_events) != len(shipped):
        out.append(f"{len(shipped_events)} shipped events for {len(shipped)} shipped shipments")
    in_parcels: Counter[str] = Counter()
    for s in shipped:
        for ln in s["lines"]:
            in_parcels[ln["line"]] += ln["qty"]
    for ln in o["lines"]:
        if ln["shipped"] + ln["cancelled"] > ln["qty"] or ln["shipped"] < 0:
            out.append(
                f"line {ln['line']} {ln['sku']}: qty {ln['qty']} shipped {ln['shipped']} cancelled {ln['cancelled']}"
            )
        if ln["shipped"] != in_parcels[ln["line"]]:
            out.append(
                f"line {ln['line']} {ln['sku']}: shipped {ln['shipped']} but parcels carry {in_parcels[ln['line']]}"
            )
    ordered = [(ln["sku"], ln["qty"], ln["unit_price"]) for ln in o["lines"]]
    if ordered != p.lines:
        out.append(f"lines {ordered} != ordered {p.lines}")
    priced = [PricedLine(ln["line"], ln["qty"], ln["unit_price"]) for ln in o["lines"]]
    units = {ln["line"]: ln["shipped"] for ln in o["lines"] if ln["shipped"]}
    a = o["amounts"]
    expected = (
        shipment_charge(priced, units, a["shipping"], a["tax"], first_shipment=bool(units)).total
        if units
        else 0
    )
    if o["payment"]["captured"] != expected:
        out.append(f"captured {o['payment']['captured']} != shipped part's total {expected}")
    return out


async def _describe_workflows(address: str, ids: list[str]) -> dict[str, str]:
    """Workflow id -> execution status name, for those that exist."""
    from temporalio.client import Client
    from temporalio.service import RPCError, RPCStatusCode

    client = await Client.connect(address)
    sem = asyncio.Semaphore(16)
    out: dict[str, str] = {}

    async def one(wid: str) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    desc = await client.get_workflow_handle(wid).describe()
                except RPCError as exc:
                    if exc.status == RPCStatusCode.NOT_FOUND:
                        return
                    if attempt == 4:
                        raise
                    await asyncio.sleep(1.0)
                    continue
                out[wid] = desc.status.name if desc.status is not None else "UNKNOWN"
                return

    await asyncio.gather(*(one(w) for w in ids))
    return out


def run_checks(stack: DevStack) -> dict[str, dict[str, Any]]:
    env = {"DATABASE_URL": stack.database_url, "PATH": str(Path(sys.executable).parent)}
    out: dict[str, dict[str, Any]] = {}
    for what in ("inventory", "ledger"):
        proc = subprocess.run([sys.executable, "-m", "runtime.cli", what, "check"], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip
        m = re.search(r"(\d+) findings", proc.stdout)
        out[what] = {"exit": proc.returncode, "findings": int(m.group(1)) if m else -1,
                     "output": (proc.stdout + proc.stderr)[-2000:]}  # fmt: skip
    return out


@contextmanager
def _data_dir(cfg: ChaosConfig) -> Iterator[Path]:
    if cfg.data_dir is not None:
        yield cfg.data_dir
        return
    with tempfile.TemporaryDirectory(prefix="omniflow-chaos-") as tmp:
        yield Path(tmp) / "data"


def run(cfg: ChaosConfig, log: Any = None) -> Report:
    """Start the stack, load it under chaos, settle, verify; the stack is stopped after."""
    say = log or (lambda msg: console.print(msg))
    started = time.monotonic()
    report = Report(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()})
    with _data_dir(cfg) as data_dir:
        stack = DevStack(data_dir, extra_env=dict(STACK_ENV)).start()
        try:
            chaos = Chaos(stack, cfg)
            chaos.setup()
            say(f"stack up ({stack.api}); {cfg.clients} clients for {cfg.seconds:.0f}s, chaos: "
                + ", ".join(f"{k}@{t:.1f}s" for t, k in cfg.schedule()))  # fmt: skip
            chaos.t0 = time.monotonic()
            chaos.give_up_at = chaos.t0 + cfg.seconds + cfg.settle_seconds
            threads = [
                threading.Thread(target=chaos.client_loop, args=(i,), daemon=True) for i in range(cfg.clients)
            ]
            side = [threading.Thread(target=f, daemon=True) for f in (chaos.restock_loop, chaos.chaos_loop)]
            warehouse = [
                threading.Thread(target=chaos.warehouse_loop, args=(i,), daemon=True)
                for i in range(cfg.pickers)
            ]
            for t in [*threads, *side, *warehouse]:
                t.start()
            progress = threading.Thread(target=chaos.progress_loop, args=(say,), daemon=True)
            progress.start()
            time.sleep(cfg.seconds)
            chaos.stop_orders.set()
            for t in [*threads, *side]:
                t.join()
            load_s = chaos.now()
            say(f"load over after {load_s:.1f}s: {len(chaos.placed)} orders placed; settling…")
            report.settle_s, unsettled = chaos.settle(cfg.settle_seconds)
            report.settle_s = round(report.settle_s, 1)
            chaos.stop_warehouse.set()
            for t in warehouse:
                t.join(HTTP_TIMEOUT * 2)
            report.stack_alive = stack.proc is not None and stack.proc.poll() is None
            report.placed = len(chaos.placed)
            report.not_placed = len(chaos.not_placed)
            report.placed_per_s = round(report.placed / cfg.seconds, 2)
            report.events = chaos.events
            if report.stack_alive:
                chaos.verify(report, unsettled)
                report.checks = run_checks(stack)
            else:
                report.problems.append("omniflow dev exited: " + stack.stderr()[-1500:])
            report.problems += chaos.not_placed[:10] + chaos.thread_errors
            if chaos.thread_errors:
                report.stuck += len(chaos.thread_errors)
            latencies = sorted(p.latency_s * 1000 for p in chaos.placed)
            report.capture_latency_ms = {f"p{int(q * 100)}": round(percentile(latencies, q), 1)
                                         for q in (0.5, 0.95, 0.99)} | {"max": round(max(latencies, default=0), 1)}  # fmt: skip
            report.shipments_shipped = sum(chaos.ship_oks.values())
            report.responses = dict(sorted(chaos.responses.items()))
            report.server_errors = chaos.server_errors
            err = stack.stderr()
            report.restarts = {
                "worker": err.count("worker exited"),
                "api": err.count("api exited"),
                "temporal": err.count("Temporal dev server exited"),
            }
        finally:
            stack.stop()
    report.seconds_total = round(time.monotonic() - started, 1)
    return report


def print_report(r: Report) -> None:
    counts = Table(title="chaos: orders", show_header=True)
    counts.add_column("what")
    counts.add_column("count", justify="right")
    rows: list[tuple[str, Any]] = [("placed", r.placed), ("  not placed (gave up / refused)", r.not_placed),
                                   ("completed", r.completed), ("cancelled", r.cancelled)]  # fmt: skip
    rows += [(f"waiting: {k}", v) for k, v in r.waiting.items()]
    rows += [("lost", r.lost), ("doubled", r.doubled), ("oversold", r.oversold), ("stock drift", r.drift),
             ("stuck", r.stuck), ("shipments shipped", r.shipments_shipped),
             ("placed / s", r.placed_per_s), ("settle time (s)", r.settle_s)]  # fmt: skip
    rows += [(f"capture latency {k} (ms)", v) for k, v in r.capture_latency_ms.items()]
    for what, c in r.checks.items():
        rows.append((f"omniflow {what} check findings", c["findings"]))
    for name, value in rows:
        bad = name in ("lost", "doubled", "oversold", "stock drift", "stuck") and value
        counts.add_row(name, f"[red]{value}[/]" if bad else str(value))
    console.print(counts)

    events = Table(title="chaos: events", show_header=True)
    for col in ("t (s)", "what", "detail", "back after (s)", "API ready after (s)"):
        events.add_column(col)
    for e in r.events:
        events.add_row(
            f"{e.at:.1f}", e.kind, e.detail, str(e.back_after_s or "-"), str(e.ready_after_s or "-")
        )
    console.print(events)
    console.print(f"supervisor restarts: {r.restarts}")

    stock = Table(title="chaos: stock per SKU", show_header=True)
    for col in ("sku", "stocked", "shipped", "reserved", "on hand"):
        stock.add_column(col, justify="right")
    for sku, s in r.stock.items():
        stock.add_row(sku, str(s["stocked"]), str(s["shipped"]), str(s["reserved"]), str(s["on_hand"]))
    console.print(stock)

    answers = Table(title="chaos: HTTP answers the clients saw (not 2xx)", show_header=True)
    answers.add_column("request and answer")
    answers.add_column("count", justify="right")
    for k, v in r.responses.items():
        if not re.search(r" 20\d$", k):
            answers.add_row(k, str(v))
    console.print(answers)
    for line in r.server_errors[:8]:
        console.print(f"[yellow]5xx[/] {line}")
    for line in r.problems[:30]:
        console.print(f"[red]problem[/] {line}")
    console.print(
        f"[bold {'green' if r.ok else 'red'}]{'OK' if r.ok else 'FAILED'}[/]: lost {r.lost}, doubled {r.doubled}, "
        f"oversold {r.oversold}, drift {r.drift}, stuck {r.stuck}, checks {'clean' if r.checks_clean else 'NOT clean'}"
        f" ({r.seconds_total:.0f}s in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="order load (and chaos) duration")
    parser.add_argument("--clients", type=int, default=4, help="order-placing threads")
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second, all clients together")
    parser.add_argument("--pickers", type=int, default=2, help="warehouse threads")
    parser.add_argument("--kill-every", type=float, default=5.0, help="SIGKILL the worker this often (s)")
    parser.add_argument("--pg-down", type=float, default=3.0, help="seconds Postgres stays down")
    parser.add_argument("--pg-stop-mode", choices=("immediate", "fast"), default="immediate")
    parser.add_argument(
        "--settle", type=float, default=150.0, help="max seconds to wait for orders to settle"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the stack's data here")
    args = parser.parse_args()
    cfg = ChaosConfig(seconds=args.seconds, clients=args.clients, rate=args.rate, pickers=args.pickers, kill_every=args.kill_every, pg_down=args.pg_down,
                      pg_stop_mode=args.pg_stop_mode, settle_seconds=args.settle, seed=args.seed,
                      data_dir=args.data_dir)  # fmt: skip
    report = run(cfg)
    print_report(report)
    path = write_json("chaos.json", report.as_json())
    console.print(f"wrote {path}")
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
