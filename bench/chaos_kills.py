"""The chaos bench's chaos (bench/chaos.py describes the run): on its schedule it SIGKILLs a
worker (with replicas, in turn with an API process), which the `omniflow dev` supervisor
restarts, SIGKILLs the Temporal dev server once and crashes Postgres once."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import psutil

from bench.chaos_report import ChaosEvent
from bench.chaos_setup import ChaosConfig
from bench.chaos_stack import (
    port_open,
    replica_processes,
    start_postgres,
    stop_postgres,
    temporal_process,
)
from bench.stack import DevStack
from client import ApiError, OmniflowClient


class ChaosKills:
    """The killing half of `Chaos` (bench/chaos_load.py), which holds these attributes."""

    stack: DevStack
    cfg: ChaosConfig
    events: list[ChaosEvent]
    thread_errors: list[str]
    stop_orders: threading.Event
    back_at: dict[str, float]  # kind -> seconds into the load when the last killed one was back

    def now(self) -> float:
        raise NotImplementedError

    def chaos_loop(self) -> None:
        try:
            for at, kind in self.cfg.schedule():
                if kind in ("worker", "api"):  # a restarted one gets `kill_every` seconds first
                    at = max(at, self.back_at.get(kind, 0.0) + self.cfg.kill_every)
                if at >= self.cfg.seconds:
                    continue
                delay = at - self.now()
                if delay > 0 and self.stop_orders.wait(delay):
                    return
                if kind in ("worker", "api"):
                    self.kill_replica(kind)
                elif kind == "temporal":
                    self.kill_temporal()
                else:
                    self.crash_postgres()
        except Exception as exc:
            self.thread_errors.append(f"chaos: {type(exc).__name__}: {exc}")

    def kill_replica(self, kind: str) -> None:
        """SIGKILL one worker or API process (with replicas the one running longest, so each is
        killed in turn), and wait until the supervisor has all of them running again (an API:
        answering /readyz on its port)."""
        running = replica_processes(self.stack, kind, timeout=10.0)
        if not running:
            self.events.append(ChaosEvent(kind, self.now(), f"no {kind} running (not restarted yet?)"))
            return
        victim = running[0]
        port = _api_port(victim) if kind == "api" else None
        at = self.now()
        victim.send_signal(signal.SIGKILL)
        detail = f"SIGKILL pid {victim.pid}" + (f" (port {port})" if port else "")
        event = ChaosEvent(kind, at, detail + f", {len(running) - 1} of {len(running)} left")
        self.events.append(event)
        # The supervisor starts a new one (a new pid); an API on a loaded machine takes a while
        # to import and connect before it answers.
        deadline = time.monotonic() + (90 if kind == "api" else 30)
        while time.monotonic() < deadline:
            again = replica_processes(self.stack, kind, timeout=1.0)
            back = len(again) >= self.stack.replicas and victim.pid not in {p.pid for p in again}
            if back and (port is None or _ready(f"http://127.0.0.1:{port}")):
                event.back_after_s = round(self.now() - at, 2)
                self.back_at[kind] = self.now()
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
            if new is not None and new.pid != p.pid and port_open(self.stack.temporal_port):
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
        """Seconds from `since` until every API replica says ready (None: not within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(_ready(url) for url in self.stack.apis):
                return round(self.now() - since, 2)
            time.sleep(0.2)
        return None


def _api_port(p: psutil.Process) -> int | None:
    try:
        return int(p.environ()["OMNIFLOW_API_PORT"])
    except (psutil.Error, KeyError, ValueError):
        return None


def _ready(url: str) -> bool:
    with OmniflowClient(url, timeout=5.0) as api:
        try:
            return api.ready().ready
        except (ApiError, httpx.HTTPError):
            return False
