"""The CLI against the embedded stack (issue 13): `omniflow keys create` finds the embedded
database when DATABASE_URL is unset, and the demo loader's summary reads the actual state."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from cli import demo
from cli.main import app
from runtime.embedded_pg import EmbeddedPostgres

TEMPLATE_DB = "omniflow_template"  # tests/conftest.py


@pytest.fixture
def embedded_stack(
    pg_server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmbeddedPostgres]:
    """A data directory laid out as `omniflow dev` leaves it (pg/ under it, the `omniflow`
    database migrated), on the test session's Postgres; no DATABASE_URL in the environment."""
    (tmp_path / "pg").symlink_to(pg_server.data_dir)
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS omniflow WITH (FORCE)")
        conn.execute(f"CREATE DATABASE omniflow TEMPLATE {TEMPLATE_DB}")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("OMNIFLOW_DATABASE_URL", raising=False)
    monkeypatch.setenv("OMNIFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OMNIFLOW_PG_PORT", str(pg_server.port))
    yield EmbeddedPostgres(tmp_path / "pg", pg_server.port)
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS omniflow WITH (FORCE)")


def test_keys_create_finds_the_embedded_database(embedded_stack: EmbeddedPostgres) -> None:
    result = CliRunner().invoke(app, ["keys", "create", "--role", "warehouse", "--name", "floor"])
    assert result.exit_code == 0, result.output
    first, secret = result.output.strip().splitlines()
    assert first.startswith("id=") and first.endswith("role=warehouse")
    with psycopg.connect(embedded_stack.url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM api_key WHERE role = 'warehouse'")]
    assert names == ["floor"] and secret.startswith("omf_")


def test_keys_create_without_any_database_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("OMNIFLOW_DATABASE_URL", raising=False)
    monkeypatch.setenv("OMNIFLOW_DATA_DIR", str(tmp_path / "nothing-here"))
    result = CliRunner().invoke(app, ["keys", "create", "--role", "admin"])
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output and "omniflow dev" in result.output


# -- the demo summary, after a restart in which every wait was decided --------------------


def _decided_api(request: httpx.Request) -> httpx.Response:
    """An API on which the demo data was loaded before and every exception decided since."""
    path = request.url.path
    if request.method == "POST" and path == "/v1/orders":
        return httpx.Response(202, json={"status": "received"})  # the replayed first answer
    if path.startswith("/v1/orders/"):
        held = [{"kind": "address_invalid", "status": "resolved"}] if path.endswith("DEMO-1002") else []
        return httpx.Response(200, json={"status": "cancelled" if held else "completed", "holds": held})
    if path == "/v1/exceptions":
        return httpx.Response(200, json={"items": [], "next_cursor": None})
    if request.method == "POST" and path == "/v1/transfers":
        return httpx.Response(200, json={"status": "completed"})
    if path.startswith("/v1/transfers/"):
        return httpx.Response(200, json={"status": "completed"})
    body: dict[str, Any] = json.loads(request.content or b"{}")
    return httpx.Response(200, json=body)


def test_the_demo_summary_reads_what_the_orders_and_transfer_are_now() -> None:
    http = httpx.Client(transport=httpx.MockTransport(_decided_api), base_url="http://demo")
    out = io.StringIO()

    def say(line: str) -> None:
        out.write(line + "\n")

    assert demo._load_transfer(http, say) and demo._load_orders(http, say)
    transfer, orders = out.getvalue().splitlines()
    assert transfer == "transfer DEMO-T1 is completed (nothing waits for a person)"
    assert "wait" not in orders and "queue" not in orders
    assert orders.startswith("6 orders: DEMO-1001 completed, DEMO-1002 cancelled")
