"""Payments through the built-in sandbox gateway: authorize, capture, refund and void, each
once per business key, never refunding more than was captured (also under concurrency),
and the ledger entries they post (capture: Dr cash clearing, Cr revenue, shipping revenue
and tax payable; refund: Dr sales returns and tax payable in proportion, Cr cash clearing)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from activities.gateways.sandbox import SandboxGateway, set_sandbox_behaviour
from domain.errors import DomainError, OperationConflict, UnknownReference
from models import finance
from models.finance import LedgerConflict
from models.payments import (
    CaptureExceedsAuthorization,
    CaptureSplit,
    GatewayTimeout,
    InvalidPaymentAmount,
    PaymentDeclined,
    PaymentGateway,
    PaymentResult,
    PaymentStateError,
    RefundExceedsCapture,
    authorize_payment,
    capture_payment,
    ledger_key,
    refund_payment,
    void_payment,
)
from runtime.db import make_async_engine

T = TypeVar("T")

# An order of 1000: revenue 800, shipping 100, tax 100.
REVENUE, SHIPPING, TAX = 800, 100, 100
TOTAL = REVENUE + SHIPPING + TAX

gateway: PaymentGateway = SandboxGateway()


async def tx(eng: AsyncEngine, op: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with eng.begin() as conn:
        return await op(conn)


async def authorize(eng: AsyncEngine, key: str = "o1:auth", ref: str = "o1", amount: int = TOTAL) -> str:
    return await tx(eng, lambda c: authorize_payment(c, gateway, key, ref, "card", amount, "USD"))


async def capture(eng: AsyncEngine, pid: str, key: str = "o1:capture", **split: int) -> PaymentResult:
    parts = {"revenue": REVENUE, "shipping": SHIPPING, "tax": TAX, **split}
    amount = parts["revenue"] + parts["shipping"] + parts["tax"]
    return await tx(
        eng,
        lambda c: capture_payment(
            c,
            gateway,
            key,
            pid,
            amount,
            CaptureSplit(revenue=parts["revenue"], shipping=parts["shipping"], tax=parts["tax"]),
            channel="web",
        ),
    )


async def refund(eng: AsyncEngine, pid: str, key: str, amount: int) -> PaymentResult:
    return await tx(eng, lambda c: refund_payment(c, gateway, key, pid, amount, channel="web"))


async def payment(eng: AsyncEngine, pid: str) -> Any:
    async with eng.connect() as conn:
        return (await conn.execute(text("SELECT * FROM payment WHERE id = :i"), {"i": pid})).one()


async def lines_of(eng: AsyncEngine, key: str) -> dict[str, tuple[int, int]]:
    async with eng.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT l.account, l.debit, l.credit FROM journal_line l JOIN journal_entry e ON e.id = l.entry_id "
                "WHERE e.key = :k"
            ),
            {"k": ledger_key(key)},
        )
        return {r.account: (int(r.debit), int(r.credit)) for r in rows}


async def balances(eng: AsyncEngine) -> dict[str, int]:
    """debits − credits per account."""
    async with eng.connect() as conn:
        rows = await conn.execute(
            text("SELECT account, sum(debit - credit) AS n FROM journal_line GROUP BY 1")
        )
        return {r.account: int(r.n) for r in rows if int(r.n)}


async def count(eng: AsyncEngine, sql: str, **params: Any) -> int:
    async with eng.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def behave(eng: AsyncEngine, reference: str, mode: str, times: int) -> None:
    async with eng.connect() as conn:
        await set_sandbox_behaviour(conn, reference, mode, times)


async def books_clean(eng: AsyncEngine) -> None:
    async with eng.connect() as conn:
        assert await finance.check(conn) == []


# -- the happy path and its ledger ------------------------------------------------------


async def test_authorize_capture_refund_in_parts(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    p = await payment(engine, pid)
    authorized = ("authorized", TOTAL, 0, 0, "sandbox", "o1")
    assert (p.status, p.authorized, p.captured, p.refunded, p.gateway, p.ref) == authorized
    assert p.gateway_ref.startswith("sbx_")
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 0  # an authorization moves no money

    captured = await capture(engine, pid)
    assert captured.entry_id is not None and not captured.replayed
    p = await payment(engine, pid)
    assert (p.status, p.captured, p.captured_tax) == ("captured", TOTAL, TAX)
    assert await lines_of(engine, "o1:capture") == {
        "1000": (TOTAL, 0),  # cash clearing
        "4000": (0, REVENUE),
        "4100": (0, SHIPPING),
        "2200": (0, TAX),  # tax payable
    }

    await refund(engine, pid, "o1:refund-1", 333)  # a third: tax 33 of 100
    p = await payment(engine, pid)
    assert (p.status, p.refunded) == ("partially_refunded", 333)
    assert await lines_of(engine, "o1:refund-1") == {"4200": (300, 0), "2200": (33, 0), "1000": (0, 333)}

    await refund(engine, pid, "o1:refund-2", TOTAL - 333)  # the rest: all the remaining tax (67)
    p = await payment(engine, pid)
    assert (p.status, p.refunded) == ("refunded", TOTAL)
    assert await lines_of(engine, "o1:refund-2") == {"4200": (600, 0), "2200": (67, 0), "1000": (0, 667)}
    # fully refunded: cash clearing and tax payable are back at zero, sales returns carry the net
    assert await balances(engine) == {"4000": -REVENUE, "4100": -SHIPPING, "4200": REVENUE + SHIPPING}

    async with engine.connect() as conn:
        entries = (await conn.execute(text("SELECT event, ref FROM journal_entry ORDER BY id"))).all()
    assert [tuple(e) for e in entries] == [("capture", "o1"), ("refund", "o1"), ("refund", "o1")]
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn") == 4
    await books_clean(engine)


async def test_partial_captures_up_to_the_authorization(engine: AsyncEngine) -> None:
    pid = await authorize(engine, amount=1500)
    await capture(engine, pid, "o1:capture-1")
    with pytest.raises(CaptureExceedsAuthorization) as err:
        await capture(engine, pid, "o1:capture-2")
    assert (err.value.requested, err.value.capturable) == (TOTAL, 500)
    await capture(engine, pid, "o1:capture-3", revenue=400, shipping=50, tax=50)
    p = await payment(engine, pid)
    assert (p.authorized, p.captured, p.captured_tax) == (1500, 1500, 150)
    await refund(engine, pid, "o1:refund", 1500)
    assert (await balances(engine)).get("2200", 0) == 0  # all 150 of tax came back
    await books_clean(engine)


async def test_a_capture_must_add_up(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    for amount, tax, revenue, shipping in ((1000, 100, 800, 50), (0, 0, 0, 0), (1000, -100, 1000, 100)):
        with pytest.raises(InvalidPaymentAmount):
            async with engine.begin() as conn:
                await capture_payment(
                    conn,
                    gateway,
                    "bad",
                    pid,
                    amount,
                    CaptureSplit(revenue=revenue, shipping=shipping, tax=tax),
                )
    with pytest.raises(InvalidPaymentAmount):
        await refund(engine, pid, "bad", 0)
    with pytest.raises(InvalidPaymentAmount):
        await authorize(engine, "o2:auth", "o2", amount=0)
    with pytest.raises(UnknownReference):
        await refund(engine, "pay_nope", "o1:refund", 10)
    assert (await payment(engine, pid)).captured == 0


# -- never more than captured ---------------------------------------------------------------


async def test_a_refund_beyond_what_was_captured_is_refused(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    with pytest.raises(RefundExceedsCapture) as err:  # nothing captured yet
        await refund(engine, pid, "o1:refund-0", 1)
    assert err.value.refundable == 0
    await capture(engine, pid)
    await refund(engine, pid, "o1:refund-1", 600)
    with pytest.raises(RefundExceedsCapture) as err:
        await refund(engine, pid, "o1:refund-2", 401)
    assert (err.value.requested, err.value.refundable) == (401, 400)
    assert isinstance(err.value, DomainError) and err.value.code == "refund_exceeds_capture"
    await refund(engine, pid, "o1:refund-3", 400)
    with pytest.raises(RefundExceedsCapture):
        await refund(engine, pid, "o1:refund-4", 1)
    assert (await payment(engine, pid)).refunded == TOTAL
    # the refused refunds left nothing behind, not even at the gateway
    assert await count(engine, "SELECT count(*) FROM payment_operation WHERE kind = 'refund'") == 2
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn WHERE kind = 'refund'") == 2
    await books_clean(engine)


async def test_the_database_refuses_a_refund_beyond_the_capture_too(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    await capture(engine, pid)
    with pytest.raises(IntegrityError, match="ck_payment_amounts"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE payment SET refunded = captured + 1 WHERE id = :i"), {"i": pid})
    with pytest.raises(IntegrityError, match="ck_payment_amounts"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE payment SET captured = authorized + 1 WHERE id = :i"), {"i": pid})
    assert (await payment(engine, pid)).refunded == 0


async def _all(*aws: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*aws, return_exceptions=True))


async def test_two_concurrent_refunds_that_together_exceed_the_capture(database_url: str) -> None:
    # A small pool (2 + 2 overflow) and ten callers: the callers holding connections wait on
    # the payment's lock while its holder asks the gateway, which must not need the pool.
    eng = make_async_engine(database_url, pool_size=2)
    try:
        pid = await authorize(eng)
        await capture(eng, pid)
        results = await _all(refund(eng, pid, "r-a", 600), refund(eng, pid, "r-b", 600))
        assert sorted(type(r).__name__ for r in results) == ["PaymentResult", "RefundExceedsCapture"], results
        assert (await payment(eng, pid)).refunded == 600

        # ten at once, 150 each, 400 left: exactly two fit
        results = await _all(*(refund(eng, pid, f"r-{i}", 150) for i in range(10)))
        done = [r for r in results if isinstance(r, PaymentResult)]
        assert len(done) == 2, results
        assert all(isinstance(r, RefundExceedsCapture) for r in results if r not in done), results
        p = await payment(eng, pid)
        assert (p.refunded, p.status) == (900, "partially_refunded")
        assert await count(eng, "SELECT count(*) FROM journal_entry WHERE event = 'refund'") == 3
        assert await count(eng, "SELECT count(*) FROM sandbox_gateway_txn WHERE kind = 'refund'") == 3
        await books_clean(eng)
    finally:
        await eng.dispose()


# -- once per key ------------------------------------------------------------------------------


async def test_a_retried_capture_captures_once_and_posts_once(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    assert await authorize(engine) == pid  # a retried authorization is the same payment
    first = await capture(engine, pid)
    again = await capture(engine, pid)
    assert again.replayed and not first.replayed
    assert (again.payment_id, again.gateway_ref, again.entry_id) == (pid, first.gateway_ref, first.entry_id)
    p = await payment(engine, pid)
    assert (p.captured, p.captured_tax) == (TOTAL, TAX)
    assert await count(engine, "SELECT count(*) FROM journal_entry WHERE event = 'capture'") == 1
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn WHERE kind = 'capture'") == 1
    # the same key for another capture is a conflict, not a second capture
    with pytest.raises(OperationConflict):
        await capture(engine, pid, revenue=700)  # another amount
    with pytest.raises(LedgerConflict):
        await capture(engine, pid, revenue=750, shipping=150)  # same amount, another split
    with pytest.raises(OperationConflict):
        await refund(engine, pid, "o1:capture", TOTAL)  # the key of another kind of operation
    with pytest.raises(OperationConflict):
        await authorize(engine, "o1:capture", "o1")
    with pytest.raises(OperationConflict):
        await authorize(engine, "o1:auth", "o1", amount=TOTAL + 1)
    # a retried refund refunds once
    assert not (await refund(engine, pid, "o1:refund", 500)).replayed
    assert (await refund(engine, pid, "o1:refund", 500)).replayed
    assert (await payment(engine, pid)).refunded == 500
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 2
    await books_clean(engine)


async def test_the_same_capture_from_two_connections_at_once_captures_once(database_url: str) -> None:
    eng = make_async_engine(database_url, pool_size=10)
    try:
        pids = await _all(*(authorize(eng) for _ in range(5)))
        assert len(set(pids)) == 1 and isinstance(pids[0], str), pids
        assert await count(eng, "SELECT count(*) FROM payment") == 1
        results = await _all(*(capture(eng, pids[0]) for _ in range(5)))
        assert all(isinstance(r, PaymentResult) for r in results), results
        assert sum(not r.replayed for r in results) == 1
        assert (await payment(eng, pids[0])).captured == TOTAL
        assert await count(eng, "SELECT count(*) FROM journal_entry") == 1
        assert await count(eng, "SELECT count(*) FROM sandbox_gateway_txn") == 2
        await books_clean(eng)
    finally:
        await eng.dispose()


# -- declines, timeouts, voids -------------------------------------------------------------


async def test_a_declined_authorization_is_recorded_and_refused(engine: AsyncEngine) -> None:
    await behave(engine, "o1", "decline", 1)
    async with engine.begin() as conn:  # the caller keeps the record by catching inside its transaction
        with pytest.raises(PaymentDeclined) as err:
            await authorize_payment(conn, gateway, "o1:auth", "o1", "card", TOTAL, "USD")
    assert err.value.kind == "authorize" and err.value.code == "payment_declined"
    pid = err.value.payment_id
    p = await payment(engine, pid)
    assert (p.status, p.authorized) == ("declined", 0)
    assert await count(engine, "SELECT count(*) FROM payment_operation WHERE outcome = 'declined'") == 1
    # the retry gets the same answer, without asking the gateway again
    with pytest.raises(PaymentDeclined):
        await authorize(engine)
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn") == 1
    with pytest.raises(PaymentStateError):
        await capture(engine, pid)
    # a new attempt (another key) is approved: the behaviour was for one call
    pid2 = await authorize(engine, "o1:auth-2")
    assert pid2 != pid and (await payment(engine, pid2)).status == "authorized"
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 0


async def test_a_declined_capture_captures_nothing(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    await behave(engine, "o1", "decline", 1)
    with pytest.raises(PaymentDeclined) as err:
        await capture(engine, pid)
    assert err.value.kind == "capture"
    p = await payment(engine, pid)
    assert (p.status, p.captured) == ("authorized", 0)
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 0
    # the retry with the same key replays the gateway's answer: still declined
    with pytest.raises(PaymentDeclined):
        await capture(engine, pid)
    await capture(engine, pid, "o1:capture-2")
    assert (await payment(engine, pid)).captured == TOTAL
    await books_clean(engine)


async def _retrying(op: Callable[[], Awaitable[T]], attempts: int = 5) -> tuple[T, int]:
    """What a workflow activity does: retry a transient GatewayTimeout with the same key."""
    for n in range(1, attempts + 1):
        try:
            return await op(), n
        except GatewayTimeout:
            continue
    raise AssertionError("still timing out")


async def test_a_gateway_that_times_out_twice_then_answers(engine: AsyncEngine) -> None:
    await behave(engine, "o1", "timeout", 2)
    pid, attempts = await _retrying(lambda: authorize(engine))
    assert attempts == 3
    assert await count(engine, "SELECT count(*) FROM payment") == 1
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn") == 1

    await behave(engine, "o1", "timeout", 2)  # captures of o1's authorization time out too
    result, attempts = await _retrying(lambda: capture(engine, pid))
    assert attempts == 3 and not result.replayed
    assert (await payment(engine, pid)).captured == TOTAL
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 1
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn WHERE kind = 'capture'") == 1
    await books_clean(engine)


async def test_a_lost_reply_is_safe_to_retry(engine: AsyncEngine) -> None:
    """The gateway captured, but its reply never arrived (our transaction rolled back): the
    retry with the same key gets the stored answer, and the money is captured once."""
    pid = await authorize(engine)
    await behave(engine, "o1", "lost_reply", 1)
    result, attempts = await _retrying(lambda: capture(engine, pid))
    assert attempts == 2
    assert await count(engine, "SELECT count(*) FROM sandbox_gateway_txn WHERE kind = 'capture'") == 1
    assert (await payment(engine, pid)).captured == TOTAL
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 1
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT gateway_ref FROM payment_operation WHERE key = 'o1:capture'"))
        ).one()
    assert stored.gateway_ref == result.gateway_ref
    await books_clean(engine)


async def test_a_void_releases_an_uncaptured_authorization(engine: AsyncEngine) -> None:
    pid = await authorize(engine)
    voided = await tx(engine, lambda c: void_payment(c, gateway, "o1:void", pid))
    assert not voided.replayed
    assert (await tx(engine, lambda c: void_payment(c, gateway, "o1:void", pid))).replayed
    assert (await payment(engine, pid)).status == "voided"
    with pytest.raises(PaymentStateError):
        await capture(engine, pid)
    with pytest.raises(PaymentStateError):  # a void under another key is refused too
        await tx(engine, lambda c: void_payment(c, gateway, "o1:void-2", pid))
    pid2 = await authorize(engine, "o2:auth", "o2")
    await capture(engine, pid2, "o2:capture")
    with pytest.raises(PaymentStateError):  # captured money is refunded, not voided
        await tx(engine, lambda c: void_payment(c, gateway, "o2:void", pid2))
    assert await count(engine, "SELECT count(*) FROM journal_entry") == 1
    await books_clean(engine)
