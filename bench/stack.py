"""Start `omniflow dev` as a subprocess on free ports, as scripts, benchmarks and CI do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtime.ports import free_port, free_port_run, port_is_free

READY_TIMEOUT = 120.0


@dataclass
class DevStack:
    data_dir: Path
    admin_key: str = "omf_e2e_admin_key_0123456789abcdefghijklmnopqrstuvwxyz"
    extra_env: dict[str, str] = field(default_factory=dict)
    demo: bool = False
    replicas: int = 1  # workers and APIs (`omniflow dev --replicas`), the APIs from `api_port` on
    api_port: int = field(default_factory=free_port)
    temporal_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)  # the worker's Prometheus endpoint
    proc: subprocess.Popen[str] | None = None
    ready_line: str | None = None
    stdout_lines: list[str] = field(default_factory=list)
    stderr_path: Path | None = None

    def __post_init__(self) -> None:
        # The replicas' ports after the first (APIs, workers' metrics) must be free too.
        if not all(port_is_free("127.0.0.1", self.api_port + i) for i in range(1, self.replicas)):
            self.api_port = free_port_run(self.replicas)
        if not all(port_is_free("127.0.0.1", self.metrics_port + i) for i in range(1, self.replicas)):
            self.metrics_port = free_port_run(self.replicas)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def apis(self) -> list[str]:
        """Every API replica's URL (the first is `api`)."""
        return [f"http://127.0.0.1:{self.api_port + i}" for i in range(self.replicas)]

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/omniflow"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cli",
            "dev",
            "--data-dir",
            str(self.data_dir),
            "--api-port",
            str(self.api_port),
            "--temporal-port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--pg-port",
            str(self.pg_port),
            "--demo" if self.demo else "--no-demo",
            "--replicas",
            str(self.replicas),
        ]

    def start(self) -> DevStack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFLOW_")}
        env.pop("DATABASE_URL", None)
        env.pop("TEMPORAL_ADDRESS", None)
        env.update(
            {
                "OMNIFLOW_ADMIN_KEY": self.admin_key,
                "OMNIFLOW_LOG_FORMAT": "json",
                "OMNIFLOW_WORKER_METRICS_PORT": str(self.metrics_port),
                **self.extra_env,
            }
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.data_dir.parent / f"{self.data_dir.name}-stderr-{time.time_ns()}.log"
        err = open(self.stderr_path, "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        got_ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                if line.startswith("READY "):
                    self.ready_line = line.strip()
                    got_ready.set()
            got_ready.set()

        threading.Thread(target=read, daemon=True).start()
        got_ready.wait(READY_TIMEOUT)
        if self.ready_line is None:
            self.stop()
            raise AssertionError(f"omniflow dev did not get ready:\n{self.stderr()[-3000:]}")
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM and wait; returns how long it took."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0


def run_dev_expecting_failure(
    argv_extra: list[str], env_extra: dict[str, str], data_dir: Path
) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFLOW_")}
    env.pop("DATABASE_URL", None)
    env.pop("TEMPORAL_ADDRESS", None)
    env.update(env_extra)
    argv = [
        sys.executable,
        "-m",
        "cli",
        "dev",
        "--data-dir",
        str(data_dir),
        "--no-demo",
        "--temporal-port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
        "--pg-port",
        str(free_port()),
        *argv_extra,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, proc.stderr
