"""The built-in sandbox payment gateway, for development and tests (OMNIFLOW_PAYMENT_GATEWAY
=sandbox, the default).

It keeps its own books, as a real payment provider does: it writes `sandbox_gateway_txn` in
its own short transaction (on its own connection), so what it did survives a rollback of the
caller's transaction and a retry with the same key gets the same answer. Tell it how to
answer with `set_sandbox_behaviour` (decline, time out, or time out after doing the work,
for the next N calls on a payment reference)."""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable

from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from domain.errors import OperationConflict
from models.payment_gateway import APPROVED, DECLINED, GatewayOutcome, GatewayTimeout
from runtime.db import make_async_engine

SANDBOX_MODES = frozenset({"decline", "timeout", "lost_reply", "approve"})


# The sandbox's own pool per caller engine, dropped with it (weakly held) and disposed with it.
_OWN_ENGINES: weakref.WeakKeyDictionary[Engine, AsyncEngine] = weakref.WeakKeyDictionary()


def _own_engine(conn: AsyncConnection) -> AsyncEngine:
    """The sandbox's own connections to the caller's database, outside the caller's pool:
    a caller holds a pooled connection (and a payment row lock) while the gateway answers,
    so a gateway drawing from the same pool could starve when many callers wait on one
    payment. A pool of its own per caller engine, as big as the caller's (every caller holds
    one of the caller's connections while it calls): an async pool's connections belong to
    the event loop they were made on, and the caller's engine is used on one loop (the
    worker's; a test's), so this pool is too. Unpooled, it started a Postgres backend per
    call, two per order."""
    caller = conn.sync_engine
    own = _OWN_ENGINES.get(caller)
    if own is None:
        size = caller.pool.size() if isinstance(caller.pool, QueuePool) else 5
        url = caller.url.render_as_string(hide_password=False)
        # A payment row another transaction holds is waited for 10 s at most, then the call
        # fails (and its activity retries), rather than holding a connection of the pool.
        own = _OWN_ENGINES[caller] = make_async_engine(
            url, size, "omniflow-sandbox-gateway", session_settings={"lock_timeout": "10s"}
        )
        event.listen(caller, "engine_disposed", _dispose_with(own))
    return own


def _dispose_with(own: AsyncEngine) -> Callable[[Engine], None]:
    def dispose(caller: Engine) -> None:
        # AsyncEngine.dispose runs the sync dispose in a greenlet, where this listener runs
        # too: the sync dispose of our pool awaits its connections' close in that greenlet.
        own.sync_engine.dispose()

    return dispose


class _Raced(Exception):
    """Another call with the same idempotency key committed first: roll back, replay it."""


class SandboxGateway:
    """The built-in gateway for development and tests. Approves by default; its books
    (`sandbox_gateway_txn`) refuse to capture more than authorized, to refund more than
    captured, and to void a captured authorization, as a real provider would. It keeps
    those books in the caller's database, on a pool of its own, never in the caller's
    transaction."""

    name = "sandbox"

    async def authorize(
        self, conn: AsyncConnection, key: str, reference: str, amount: int, currency: str
    ) -> GatewayOutcome:
        return await self._call(conn, key, "authorize", amount, reference=reference)

    async def capture(self, conn: AsyncConnection, key: str, gateway_ref: str, amount: int) -> GatewayOutcome:
        return await self._call(conn, key, "capture", amount, parent=gateway_ref)

    async def void(self, conn: AsyncConnection, key: str, gateway_ref: str) -> GatewayOutcome:
        return await self._call(conn, key, "void", 0, parent=gateway_ref)

    async def refund(self, conn: AsyncConnection, key: str, gateway_ref: str, amount: int) -> GatewayOutcome:
        return await self._call(conn, key, "refund", amount, parent=gateway_ref)

    async def _call(
        self,
        conn: AsyncConnection,
        key: str,
        kind: str,
        amount: int,
        *,
        reference: str = "",
        parent: str = "",
    ) -> GatewayOutcome:
        async with _own_engine(conn).connect() as own:
            try:
                async with own.begin():
                    outcome, signal = await self._decide(own, key, kind, amount, reference, parent)
            except _Raced:
                async with own.begin():
                    stored = await _stored_txn(own, key, kind, amount)
                assert stored is not None
                return stored
        if signal == "timeout":  # nothing was done; the countdown is committed
            raise GatewayTimeout(f"sandbox: {kind} {key!r} timed out")
        if signal == "lost_reply":  # done and recorded, but the reply never arrives
            raise GatewayTimeout(f"sandbox: no reply to {kind} {key!r} (it was done)")
        assert outcome is not None
        return outcome

    async def _decide(
        self, own: AsyncConnection, key: str, kind: str, amount: int, reference: str, parent: str
    ) -> tuple[GatewayOutcome | None, str]:
        """The outcome and the behaviour that applies ("", "timeout" or "lost_reply")."""
        stored = await _stored_txn(own, key, kind, amount)
        if stored is not None:
            return stored, ""
        reason = ""
        if parent:
            auth = (
                await own.execute(
                    text(
                        "SELECT reference, amount, outcome FROM sandbox_gateway_txn WHERE id = :p AND kind = 'authorize' "
                        "FOR UPDATE"
                    ),
                    {"p": parent},
                )
            ).first()
            reference = auth.reference if auth is not None else ""
            if auth is None or auth.outcome != APPROVED:
                reason = "unknown authorization"
            else:
                reason = await _books_refusal(own, kind, parent, int(auth.amount), amount)
        mode = (
            await own.execute(
                text(
                    "UPDATE sandbox_gateway_behaviour SET remaining = remaining - 1 "
                    "WHERE reference = :r AND remaining > 0 RETURNING mode"
                ),
                {"r": reference},
            )
        ).scalar()
        if mode == "timeout":
            return None, "timeout"
        if mode == "decline" and not reason:
            reason = "declined by the sandbox behaviour"
        txn_id = f"sbx_{secrets.token_hex(12)}"
        inserted = (
            await own.execute(
                text(
                    "INSERT INTO sandbox_gateway_txn (id, idempotency_key, kind, reference, amount, outcome) "
                    "VALUES (:id, :k, :kind, :ref, :a, :o) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
                ),
                {
                    "id": txn_id,
                    "k": key,
                    "kind": kind,
                    "ref": parent or reference,
                    "a": amount,
                    "o": DECLINED if reason else APPROVED,
                },
            )
        ).first()
        if inserted is None:
            raise _Raced()
        outcome = GatewayOutcome(approved=not reason, gateway_ref=txn_id, reason=reason)
        return outcome, "lost_reply" if mode == "lost_reply" else ""


async def _stored_txn(own: AsyncConnection, key: str, kind: str, amount: int) -> GatewayOutcome | None:
    row = (
        await own.execute(
            text("SELECT id, kind, amount, outcome FROM sandbox_gateway_txn WHERE idempotency_key = :k"),
            {"k": key},
        )
    ).first()
    if row is None:
        return None
    if row.kind != kind or int(row.amount) != amount:
        raise OperationConflict(key)
    return GatewayOutcome(
        approved=row.outcome == APPROVED,
        gateway_ref=row.id,
        replayed=True,
        reason="" if row.outcome == APPROVED else "declined",
    )


async def _books_refusal(own: AsyncConnection, kind: str, parent: str, authorized: int, amount: int) -> str:
    sums = (
        await own.execute(
            text(
                "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'capture'), 0) AS captured, "
                "coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0) AS refunded, "
                "count(*) FILTER (WHERE kind = 'void') AS voids "
                "FROM sandbox_gateway_txn WHERE reference = :p AND outcome = 'approved'"
            ),
            {"p": parent},
        )
    ).one()
    captured, refunded = int(sums.captured), int(sums.refunded)
    if kind == "capture" and (sums.voids or captured + amount > authorized):
        return "capture exceeds the authorization"
    if kind == "refund" and refunded + amount > captured:
        return "refund exceeds the captured amount"
    if kind == "void" and (sums.voids or captured):
        return "the authorization is already captured or voided"
    return ""


async def set_sandbox_behaviour(conn: AsyncConnection, reference: str, mode: str, times: int = 1) -> None:
    """Make the sandbox answer the next `times` calls on payment `reference` (the
    authorization's reference: captures, voids and refunds of it count too) with `mode`:
    `decline`; `timeout` (nothing done, GatewayTimeout raised); `lost_reply` (done and
    recorded, but GatewayTimeout raised: a retry with the same key gets the stored answer);
    `approve` forgets the behaviour. Like the gateway's books, this is the sandbox's own
    state: it is committed at once, outside the caller's transaction."""
    if mode not in SANDBOX_MODES:
        raise ValueError(f"unknown sandbox mode {mode!r} (one of {sorted(SANDBOX_MODES)})")
    async with _own_engine(conn).begin() as own:
        if mode == "approve":
            await own.execute(
                text("DELETE FROM sandbox_gateway_behaviour WHERE reference = :r"), {"r": reference}
            )
            return
        await own.execute(
            text(
                "INSERT INTO sandbox_gateway_behaviour (reference, mode, remaining) VALUES (:r, :m, :n) "
                "ON CONFLICT (reference) DO UPDATE SET mode = EXCLUDED.mode, remaining = EXCLUDED.remaining"
            ),
            {"r": reference, "m": mode, "n": times},
        )
