"""`omniflow dev`: the whole stack on one machine, for people (`make run`) and scripts.

Starts (unless DATABASE_URL / TEMPORAL_ADDRESS point elsewhere) an embedded Postgres and
the Temporal dev server, applies migrations, then runs the worker and the API as child
processes and restarts them if they die. `--replicas N` runs N workers and N APIs (on N
consecutive ports from the API port) against the one Postgres and the one Temporal server,
as a deployment with several of each does. Prints one `READY …` line once every API answers
/readyz and every worker polls. SIGTERM / Ctrl-C stops everything it started."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO

import httpx
import psycopg

from activities.gateways import gateway_factory
from cli.temporal_dev import TemporalDevServer, ensure_search_attributes
from runtime.admin_key import install_key, resolve_admin_key
from runtime.db import make_sync_engine
from runtime.embedded_pg import EmbeddedPostgres
from runtime.errors import StartupError
from runtime.migrate import upgrade
from runtime.ports import require_free_port
from runtime.process import child_preexec
from runtime.settings import Settings
from runtime.temporal import connect_or_fail

STOP_GRACE_SECONDS = 6.0


# A child that ran this long before dying restarts at once again (the back-off is for crash loops).
HEALTHY_RUN_SECONDS = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, preexec_fn=child_preexec)  # noqa: S603
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class DevStack:
    settings: Settings
    demo: bool = True
    replicas: int = 1  # workers and APIs, each
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    pg: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False
    _lock_fh: IO[str] | None = None

    # -- start -----------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        s = self.settings
        gateway_factory(s.payment_gateway)  # a bad OMNIFLOW_PAYMENT_GATEWAY fails here, not in the worker
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        for port in self.api_ports:
            require_free_port("OMNIFLOW_API_PORT", s.api_host, port)
        for port in self.metrics_ports:
            require_free_port("OMNIFLOW_WORKER_METRICS_PORT", s.worker_metrics_host, port)

        database_url = s.database_url
        if database_url is None:
            self.pg = EmbeddedPostgres(s.pg_data_dir, s.pg_port)
            self.pg.start()
            database_url = self.pg.url
        else:
            _check_database(database_url)
        upgrade(database_url)

        temporal_address = s.temporal_address
        ui_url = s.temporal_ui_url
        if temporal_address is None:
            self.temporal = TemporalDevServer(
                s.temporal_db_file, s.temporal_port, s.ui_port, log_file=s.data_dir / "temporal.log"
            )
            self.temporal.start()
            temporal_address = self.temporal.address
            ui_url = self.temporal.ui_url
        asyncio.run(_prepare_temporal(temporal_address, s.temporal_namespace))

        admin_key, generated = resolve_admin_key(
            s.admin_key.get_secret_value() if s.admin_key else None, s.data_dir
        )
        engine = make_sync_engine(database_url, pool_size=1)
        install_key(engine, admin_key, role="admin", name="bootstrap admin")
        engine.dispose()

        env = {**os.environ, **s.as_env(), "DATABASE_URL": database_url, "TEMPORAL_ADDRESS": temporal_address}
        if ui_url:  # the console links each workflow to it
            env["OMNIFLOW_TEMPORAL_UI_URL"] = ui_url
        self.children = self._children(env)
        for child in self.children:
            child.start()
        api_urls = [f"http://{s.api_host}:{port}" for port in self.api_ports]
        api_url = api_urls[0]
        self._wait_ready(api_urls, temporal_address)
        if self.demo:
            from cli.demo import load_demo

            load_demo(api_url, admin_key, self.out)
        return {
            "api": api_url,
            "apis": ",".join(api_urls),
            "docs": f"{api_url}/docs",
            "console": f"{api_url}/console",
            "metrics": ",".join(
                f"http://{s.worker_metrics_host}:{port}/metrics" for port in self.metrics_ports
            ),
            "temporal": temporal_address,
            "ui": ui_url or "",
            "database": _redact(database_url),
            "admin_key": admin_key,
            "admin_key_source": "OMNIFLOW_ADMIN_KEY"
            if s.admin_key
            else ("generated" if generated else str(s.data_dir / "admin_key")),
        }

    @property
    def api_ports(self) -> list[int]:
        return [self.settings.api_port + i for i in range(self.replicas)]

    @property
    def metrics_ports(self) -> list[int]:
        """Each worker's Prometheus port (consecutive from the setting; none when it is 0)."""
        first = self.settings.worker_metrics_port
        return [first + i for i in range(self.replicas)] if first else []

    def _children(self, env: dict[str, str]) -> list[Child]:
        """The workers, then the APIs (stopped in the reverse order: the APIs first). With
        replicas each is named by its number (`worker 2`, `api 2`)."""

        def name(kind: str, i: int) -> str:
            return kind if self.replicas == 1 else f"{kind} {i + 1}"

        metrics = [{"OMNIFLOW_WORKER_METRICS_PORT": str(port)} for port in self.metrics_ports]
        workers = [
            Child(
                name("worker", i),
                [sys.executable, "-m", "worker"],
                {**env, **(metrics[i] if metrics else {})},
            )
            for i in range(self.replicas)
        ]
        apis = [
            Child(name("api", i), [sys.executable, "-m", "api"], {**env, "OMNIFLOW_API_PORT": str(port)})
            for i, port in enumerate(self.api_ports)
        ]
        return workers + apis

    def _lock_data_dir(self) -> None:
        fh = open(self.settings.data_dir / ".lock", "w")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(
                "OMNIFLOW_DATA_DIR", f"another `omniflow dev` is already using {self.settings.data_dir}"
            ) from None
        self._lock_fh = fh

    def _wait_ready(self, api_urls: list[str], temporal_address: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            while True:
                for child in self.children:
                    if not child.alive():
                        raise StartupError(
                            "omniflow dev",
                            f"the {child.name} exited during start-up (see its log lines above)",
                        )
                try:
                    if all(http.get(f"{url}/readyz").status_code == 200 for url in api_urls) and (
                        asyncio.run(
                            _worker_pollers(
                                temporal_address, self.settings.temporal_namespace, self.settings.task_queue
                            )
                        )
                        >= self.replicas
                    ):
                        return
                except (httpx.HTTPError, RuntimeError):
                    pass
                if time.monotonic() > deadline:
                    raise StartupError("omniflow dev", f"the stack was not ready after {timeout:.0f}s")
                time.sleep(0.3)

    # -- run and stop ----------------------------------------------------------------

    def supervise(self) -> None:
        """Restart a child that died (a crashed worker must not stop the stack)."""
        while not self._stopping:
            now = time.monotonic()
            for child in self.children:
                if self._stopping or child.alive():
                    continue
                if child.next_start == 0.0:
                    code = child.proc.returncode if child.proc else None
                    print(
                        f"omniflow dev: {child.name} exited ({code}); restarting", file=sys.stderr, flush=True
                    )
                    if now - child.started_at > HEALTHY_RUN_SECONDS:
                        child.restarts = 0  # it ran fine for a while: this crash is not a crash loop
                    child.next_start = now + min(5.0, 0.5 * (2 ** min(child.restarts, 4)))
                elif now >= child.next_start:
                    child.restarts += 1
                    child.next_start = 0.0
                    child.start()
            if self.temporal is not None and not self.temporal.running() and not self._stopping:
                print("omniflow dev: Temporal dev server exited; restarting", file=sys.stderr, flush=True)
                self.temporal.start()
            time.sleep(0.2)

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def stop(self) -> None:
        self._stopping = True
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in reversed(self.children):  # API first, then the worker
            child.terminate()
        for child in reversed(self.children):
            child.wait_or_kill(deadline)
        if self.temporal is not None:
            self.temporal.stop(timeout=5.0)
        if self.pg is not None:
            self.pg.stop()


def run_dev(settings: Settings, demo: bool = True, simulate: bool = False, replicas: int = 1) -> int:
    stack = DevStack(settings, demo=demo, replicas=replicas)
    signal.signal(signal.SIGTERM, stack.request_stop)
    signal.signal(signal.SIGINT, stack.request_stop)
    try:
        info = stack.start()
    except StartupError as exc:
        stack.stop()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except BaseException:
        stack.stop()
        raise
    _announce(info, stack.out)
    # `omniflow simulate` against this stack, once (not restarted: it ends when its run does).
    argv = [sys.executable, "-m", "cli", "simulate", "--api-url", info["api"], "--api-key", info["admin_key"]]
    traffic = subprocess.Popen(argv) if simulate else None  # noqa: S603
    try:
        stack.supervise()
    finally:
        if traffic is not None and traffic.poll() is None:
            traffic.terminate()
            traffic.wait(STOP_GRACE_SECONDS)
        stack.stop()
        print("omniflow dev: stopped", file=sys.stderr, flush=True)
    return 0


def _announce(info: dict[str, str], out: IO[str]) -> None:
    if out.isatty():
        from rich.console import Console
        from rich.panel import Panel

        Console(file=out).print(
            Panel.fit(
                f"[bold]Console[/]       {info['console']}\n"
                + (
                    f"[bold]API replicas[/]  {info['apis'].replace(',', '  ')}\n"
                    if "," in info["apis"]
                    else ""
                )
                + f"[bold]API docs[/]      {info['docs']}\n"
                f"[bold]Temporal UI[/]   {info['ui'] or '(external Temporal)'}\n"
                f"[bold]Metrics[/]       {info['api']}/metrics · worker {info['metrics'] or '(off)'}\n"
                f"[bold]Admin key[/]     {info['admin_key']}   [dim]({info['admin_key_source']})[/]\n"
                f"[bold]Database[/]      {info['database']}\n\n"
                "[dim]Stuck processes in the UI: OmniException IS NOT NULL   ·   Ctrl-C stops everything[/]\n"
                "[dim]Simulated traffic: `make demo` (or `omniflow simulate` against this stack)[/]",
                title="omniflow is running",
            )
        )
    print(
        f"READY api={info['api']} apis={info['apis']} docs={info['docs']} console={info['console']} "
        f"ui={info['ui']} temporal={info['temporal']} metrics={info['metrics']}",
        file=out,
        flush=True,
    )
    if not out.isatty():
        print(f"ADMIN_KEY {info['admin_key']}", file=out, flush=True)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _check_database(url: str) -> None:
    from runtime.db import sqlalchemy_url

    plain = sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        psycopg.connect(plain, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StartupError("DATABASE_URL", f"cannot connect to {_redact(url)}: {reason}") from None


async def _prepare_temporal(address: str, namespace: str) -> None:
    client = await connect_or_fail(address, namespace, "TEMPORAL_ADDRESS", within=30.0)
    await ensure_search_attributes(client, namespace)


async def _worker_pollers(address: str, namespace: str, task_queue: str) -> int:
    """How many workers poll the task queue for workflow tasks (each is one poller identity)."""
    from runtime.temporal import connect, task_queue_pollers

    return len(await task_queue_pollers(await connect(address, namespace), task_queue))
