"""The payment gateways: the sandbox's own books (it refuses what a real provider would),
and OMNIFLOW_PAYMENT_GATEWAY choosing the gateway the worker charges through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.gateways import GATEWAYS, gateway_from_settings
from activities.gateways.sandbox import SandboxGateway, _own_engine, set_sandbox_behaviour
from cli.dev import DevStack
from domain.errors import OperationConflict
from runtime.db import make_async_engine
from runtime.errors import StartupError
from runtime.settings import Settings


async def test_the_sandbox_keeps_its_own_books(engine: AsyncEngine) -> None:
    """The gateway refuses what its books do not allow, even if our side asked for it."""
    sandbox = SandboxGateway()
    async with engine.connect() as conn:
        auth = await sandbox.authorize(conn, "g-auth", "g-1", 500, "USD")
        assert auth.approved
        assert (await sandbox.capture(conn, "g-cap", auth.gateway_ref, 400)).approved
        assert (await sandbox.capture(conn, "g-cap-2", auth.gateway_ref, 101)).declined
        assert (await sandbox.refund(conn, "g-ref", auth.gateway_ref, 401)).declined
        assert (await sandbox.void(conn, "g-void", auth.gateway_ref)).declined
        assert (await sandbox.capture(conn, "g-cap-3", "sbx_unknown", 1)).declined
        replay = await sandbox.capture(conn, "g-cap", auth.gateway_ref, 400)
        assert replay.approved and replay.replayed
        with pytest.raises(OperationConflict):
            await sandbox.capture(conn, "g-cap", auth.gateway_ref, 300)
        with pytest.raises(ValueError, match="unknown sandbox mode"):
            await set_sandbox_behaviour(conn, "g-1", "explode", 1)
        await set_sandbox_behaviour(conn, "g-1", "decline", 5)
        await set_sandbox_behaviour(conn, "g-1", "approve", 0)
        assert (await sandbox.refund(conn, "g-ref-2", auth.gateway_ref, 400)).approved


async def test_the_sandbox_waits_for_a_held_payment_row_ten_seconds_at_most(engine: AsyncEngine) -> None:
    """Its sessions start with lock_timeout (a connection setting, not a statement per call):
    a call meeting a row another transaction holds fails after 10 s instead of holding one
    of its connections for as long as the holder does."""
    async with engine.connect() as conn, _own_engine(conn).connect() as own:
        assert (await own.execute(text("SHOW lock_timeout"))).scalar() == "10s"


async def test_the_sandbox_keeps_its_connections_pooled_and_closes_them_with_the_callers_engine(
    database_url: str,
) -> None:
    """One Postgres backend for many calls (it was a new one per call: two per order), and
    none left once the caller's engine is disposed (its pool lives on the caller's loop)."""
    caller = make_async_engine(database_url, pool_size=2)
    sandbox = SandboxGateway()

    async def gateway_backends() -> list[tuple[object, ...]]:
        async with caller.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT pid, backend_start FROM pg_stat_activity "
                    "WHERE application_name = 'omniflow-sandbox-gateway' AND datname = current_database()"
                )
            )
            return [tuple(r) for r in rows]

    async with caller.connect() as conn:
        auth = await sandbox.authorize(conn, "p-auth", "p-1", 500, "USD")
        first = await gateway_backends()
        for i in range(4):
            assert (await sandbox.capture(conn, f"p-cap-{i}", auth.gateway_ref, 100)).approved
        await set_sandbox_behaviour(conn, "p-1", "decline", 1)
    assert len(first) == 1 and await gateway_backends() == first
    await caller.dispose()
    for _ in range(100):  # a closed connection's backend leaves pg_stat_activity a moment later
        if not await gateway_backends():
            break
        await asyncio.sleep(0.05)
    assert await gateway_backends() == []
    await caller.dispose()


# -- choosing the gateway (OMNIFLOW_PAYMENT_GATEWAY) ----------------------------------------------


def test_the_sandbox_is_the_default_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIFLOW_PAYMENT_GATEWAY", raising=False)
    assert Settings().payment_gateway == "sandbox"
    assert isinstance(gateway_from_settings(Settings()), SandboxGateway)


def test_the_setting_picks_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    class OtherGateway(SandboxGateway):
        name = "other"

    monkeypatch.setitem(GATEWAYS, "other", lambda settings: OtherGateway())
    monkeypatch.setenv("OMNIFLOW_PAYMENT_GATEWAY", "other")
    chosen = gateway_from_settings(Settings())
    assert isinstance(chosen, OtherGateway) and chosen.name == "other"
    monkeypatch.setenv("OMNIFLOW_PAYMENT_GATEWAY", "sandbox")
    assert type(gateway_from_settings(Settings())) is SandboxGateway


def test_an_unknown_gateway_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMNIFLOW_PAYMENT_GATEWAY", "acme-pay")
    with pytest.raises(
        StartupError,
        match=r"OMNIFLOW_PAYMENT_GATEWAY: unknown payment gateway 'acme-pay' \(one of: sandbox\)",
    ):
        gateway_from_settings(Settings())
    # `omniflow dev` refuses it before it starts anything (not later, in the worker).
    with pytest.raises(StartupError, match="OMNIFLOW_PAYMENT_GATEWAY"):
        DevStack(Settings(data_dir=tmp_path / "data")).start()
    assert not (tmp_path / "data").exists()
