"""Payments: the payment operations on our own `payment` table, through a payment gateway
(models.payment_gateway.PaymentGateway; the adapters, the sandbox among them, are in
activities/gateways/).

Each operation (authorize, capture, void, refund) runs in the caller's transaction and is
idempotent by its business key (`payment_operation.key`): a retried call replays the stored
outcome and never charges, captures or refunds twice. The same key is handed to the
gateway as its idempotency key, so a call whose reply was lost (a timeout after the gateway
did the work) is safe to retry too.

Invariants: captured <= authorized and refunded <= captured, checked under the payment
row's lock (`FOR UPDATE`) before the gateway is called, and by the database's CHECK as the
last line of defence. A capture posts the `capture` entry (Dr cash clearing; Cr revenue,
shipping revenue, tax payable) and a refund the `refund` entry (Dr sales returns and tax
payable in proportion to the capture; Cr cash clearing), through models.finance.post."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError, OperationConflict, UnknownReference
from domain.posting import capture_amounts, lines_for, refund_amounts
from models.finance import Posting, post
from models.payment_gateway import (
    APPROVED,
    DECLINED,
    GatewayOutcome,
    GatewayTimeout,
    PaymentDeclined,
    PaymentGateway,
)

__all__ = [
    "APPROVED",
    "DECLINED",
    "CaptureExceedsAuthorization",
    "CaptureSplit",
    "GatewayOutcome",
    "GatewayTimeout",
    "InvalidPaymentAmount",
    "PaymentDeclined",
    "PaymentGateway",
    "PaymentResult",
    "PaymentStateError",
    "RefundExceedsCapture",
    "authorize_payment",
    "capture_payment",
    "ledger_key",
    "payment_id_for",
    "refund_payment",
    "refund_split",
    "void_payment",
]

# -- errors ------------------------------------------------------------------------------------


@dataclass
class RefundExceedsCapture(DomainError):
    payment_id: str
    requested: int
    refundable: int
    code = "refund_exceeds_capture"

    def __str__(self) -> str:
        return (
            f"payment {self.payment_id}: cannot refund {self.requested}, only {self.refundable} is refundable"
        )

    def details(self) -> dict[str, object]:
        return {"payment_id": self.payment_id, "requested": self.requested, "refundable": self.refundable}


@dataclass
class CaptureExceedsAuthorization(DomainError):
    payment_id: str
    requested: int
    capturable: int
    code = "capture_exceeds_authorization"

    def __str__(self) -> str:
        return f"payment {self.payment_id}: cannot capture {self.requested}, only {self.capturable} is authorized"

    def details(self) -> dict[str, object]:
        return {"payment_id": self.payment_id, "requested": self.requested, "capturable": self.capturable}


@dataclass
class PaymentStateError(DomainError):
    payment_id: str
    status: str
    action: str
    code = "payment_state"

    def __str__(self) -> str:
        return f"payment {self.payment_id} is {self.status}: it cannot be {self.action}"


@dataclass
class InvalidPaymentAmount(DomainError):
    reason: str
    code = "invalid_payment_amount"

    def __str__(self) -> str:
        return self.reason


# -- payment operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    key: str
    kind: str
    amount: int
    gateway_ref: str
    entry_id: int | None = None  # the journal entry posted (capture, refund)
    replayed: bool = False


def payment_id_for(key: str) -> str:
    """The payment created by authorization `key` (deterministic: a retry finds it)."""
    return "pay_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def ledger_key(key: str) -> str:
    """The journal entry's business key of payment operation `key`."""
    return f"payment:{key}"


def refund_split(amount: int, refunded_before: int, captured: int, captured_tax: int) -> dict[str, int]:
    """The `refund` amounts of refunding `amount` after `refunded_before` of `captured`.
    Tax is returned in proportion to the capture, computed on the running total so that
    refunds in parts return exactly what one refund of the same total would: a full refund
    in any number of parts returns all of the captured tax (no rounding residue)."""
    return refund_amounts(amount, captured, captured_tax, refunded_before)


async def _lock_payment(conn: AsyncConnection, payment_id: str) -> Any:
    row = (
        await conn.execute(
            text(
                "SELECT id, ref, method, gateway, gateway_ref, currency, status, authorized, captured, captured_tax, refunded "
                "FROM payment WHERE id = :id FOR UPDATE"
            ),
            {"id": payment_id},
        )
    ).first()
    if row is None:
        raise UnknownReference("payment", payment_id)
    return row


async def _operation(conn: AsyncConnection, key: str) -> Any:
    return (
        await conn.execute(
            text(
                "SELECT key, payment_id, kind, amount, outcome, gateway_ref FROM payment_operation WHERE key = :k"
            ),
            {"k": key},
        )
    ).first()


async def _record(
    conn: AsyncConnection, key: str, payment_id: str, kind: str, amount: int, outcome: GatewayOutcome
) -> None:
    await conn.execute(
        text(
            "INSERT INTO payment_operation (key, payment_id, kind, amount, outcome, gateway_ref) "
            "VALUES (:k, :p, :kind, :a, :o, :g)"
        ),
        {
            "k": key,
            "p": payment_id,
            "kind": kind,
            "a": amount,
            "o": outcome.outcome,
            "g": outcome.gateway_ref,
        },
    )


async def _entry_id(conn: AsyncConnection, key: str) -> int | None:
    found = (
        await conn.execute(text("SELECT id FROM journal_entry WHERE key = :k"), {"k": ledger_key(key)})
    ).scalar()
    return int(found) if found is not None else None


async def _replay(
    conn: AsyncConnection, key: str, kind: str, payment_id: str, amount: int
) -> PaymentResult | None:
    """The stored outcome of `key` (read under the payment's lock), or None if not done."""
    op = await _operation(conn, key)
    if op is None:
        return None
    if op.kind != kind or op.payment_id != payment_id or int(op.amount) != amount:
        raise OperationConflict(key)
    if op.outcome != APPROVED:
        raise PaymentDeclined(payment_id, kind, key, "declined (replayed)")
    return PaymentResult(
        payment_id, key, kind, amount, op.gateway_ref, await _entry_id(conn, key), replayed=True
    )


def _positive(amount: int, what: str) -> None:
    if amount <= 0:
        raise InvalidPaymentAmount(f"the {what} amount must be positive (got {amount})")


async def authorize_payment(
    conn: AsyncConnection,
    gateway: PaymentGateway,
    key: str,
    ref: str,
    method: str,
    amount: int,
    currency: str = "USD",
) -> str:
    """Authorize `amount` for `ref` (an order); returns the payment id. Idempotent by `key`:
    a retry returns the same payment. A decline records the payment as `declined` and raises
    PaymentDeclined (catch it inside the transaction to keep the record)."""
    _positive(amount, "authorization")
    payment_id = payment_id_for(key)
    used = await _operation(conn, key)
    if used is not None and used.kind != "authorize":
        raise OperationConflict(key)  # the key was used for another payment operation
    claimed = (
        await conn.execute(
            text(
                "INSERT INTO payment (id, ref, method, gateway, currency, status, authorized) "
                "VALUES (:id, :ref, :m, :g, :cur, 'authorizing', 0) ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            {"id": payment_id, "ref": ref, "m": method, "g": gateway.name, "cur": currency},
        )
    ).first()
    if claimed is None:  # authorized before (or a concurrent call committed while we waited)
        pay = await _lock_payment(conn, payment_id)
        if (pay.ref, pay.method, pay.currency, pay.gateway) != (ref, method, currency, gateway.name):
            raise OperationConflict(key)
        if await _replay(conn, key, "authorize", payment_id, amount) is not None:
            return payment_id
        # else: claimed earlier in this same transaction and the gateway timed out: ask again
    outcome = await gateway.authorize(conn, key, ref, amount, currency)
    await conn.execute(
        text("UPDATE payment SET status = :s, authorized = :a, gateway_ref = :g WHERE id = :id"),
        {
            "s": "authorized" if outcome.approved else "declined",
            "a": amount if outcome.approved else 0,
            "g": outcome.gateway_ref,
            "id": payment_id,
        },
    )
    await _record(conn, key, payment_id, "authorize", amount, outcome)
    if outcome.declined:
        raise PaymentDeclined(payment_id, "authorize", key, outcome.reason)
    return payment_id


@dataclass(frozen=True)
class CaptureSplit:
    """What a capture is for (minor units): merchandise revenue, shipping revenue and tax."""

    revenue: int
    shipping: int
    tax: int


def _check_split(amount: int, split: CaptureSplit) -> None:
    """A capture is positive, its parts are not negative, and they add up to it."""
    revenue, shipping, tax = split.revenue, split.shipping, split.tax
    _positive(amount, "capture")
    if min(revenue, shipping, tax) < 0:
        raise InvalidPaymentAmount("revenue, shipping and tax must not be negative")
    if amount != revenue + shipping + tax:
        raise InvalidPaymentAmount(
            f"the capture amount {amount} must equal revenue {revenue} + shipping {shipping} + tax {tax}"
        )


async def capture_payment(
    conn: AsyncConnection,
    gateway: PaymentGateway,
    key: str,
    payment_id: str,
    amount: int,
    split: CaptureSplit,
    *,
    channel: str | None = None,
) -> PaymentResult:
    """Capture `amount` (= revenue + shipping + tax of `split`) of the authorization and post
    the `capture` entry. Partial captures add up to the authorization, but none after a refund
    (refunds split tax in proportion to a settled capture). Idempotent by `key`: a retry
    captures once and posts once; the same key with another split raises LedgerConflict."""
    _check_split(amount, split)
    pay = await _lock_payment(conn, payment_id)
    amounts = capture_amounts(split.revenue, split.shipping, split.tax)
    postings = [Posting.of(ln, channel=channel) for ln in lines_for("capture", amounts)]
    done = await _replay(conn, key, "capture", payment_id, amount)
    if done is not None:
        # Posting again is a no-op for the same split, and LedgerConflict for another one.
        await post(conn, ledger_key(key), "capture", postings, ref=pay.ref, currency=pay.currency)
        return done
    if pay.status not in ("authorized", "captured"):
        raise PaymentStateError(payment_id, pay.status, "captured")
    capturable = int(pay.authorized) - int(pay.captured)
    if amount > capturable:
        raise CaptureExceedsAuthorization(payment_id, amount, capturable)
    outcome = await gateway.capture(conn, key, pay.gateway_ref, amount)
    await _record(conn, key, payment_id, "capture", amount, outcome)
    if outcome.declined:
        raise PaymentDeclined(payment_id, "capture", key, outcome.reason)
    await conn.execute(
        text(
            "UPDATE payment SET captured = captured + :a, captured_tax = captured_tax + :t, status = 'captured' "
            "WHERE id = :id"
        ),
        {"a": amount, "t": split.tax, "id": payment_id},
    )
    entry = await post(
        conn,
        ledger_key(key),
        "capture",
        postings,
        ref=pay.ref,
        currency=pay.currency,
        memo=f"capture {payment_id}",
    )
    return PaymentResult(payment_id, key, "capture", amount, outcome.gateway_ref, entry)


async def void_payment(
    conn: AsyncConnection, gateway: PaymentGateway, key: str, payment_id: str
) -> PaymentResult:
    """Release an authorization that was never captured. Idempotent by `key`."""
    pay = await _lock_payment(conn, payment_id)
    done = await _replay(conn, key, "void", payment_id, 0)
    if done is not None:
        return done
    if pay.status != "authorized" or int(pay.captured) != 0:
        raise PaymentStateError(payment_id, pay.status, "voided")
    outcome = await gateway.void(conn, key, pay.gateway_ref)
    await _record(conn, key, payment_id, "void", 0, outcome)
    if outcome.declined:
        raise PaymentDeclined(payment_id, "void", key, outcome.reason)
    await conn.execute(text("UPDATE payment SET status = 'voided' WHERE id = :id"), {"id": payment_id})
    return PaymentResult(payment_id, key, "void", 0, outcome.gateway_ref)


async def refund_payment(
    conn: AsyncConnection,
    gateway: PaymentGateway,
    key: str,
    payment_id: str,
    amount: int,
    *,
    channel: str | None = None,
    event: str = "refund",
    tax: int | None = None,
) -> PaymentResult:
    """Refund `amount` of what was captured and post the `refund` entry (tax in proportion
    to the capture, or `tax` when the caller knows it). Never more than captured − refunded: checked under the payment's lock,
    so concurrent refunds cannot together exceed the capture. Idempotent by `key`."""
    _positive(amount, "refund")
    pay = await _lock_payment(conn, payment_id)
    done = await _replay(conn, key, "refund", payment_id, amount)
    if done is not None:
        return done
    captured, refunded = int(pay.captured), int(pay.refunded)
    if amount > captured - refunded:
        raise RefundExceedsCapture(payment_id, amount, captured - refunded)
    outcome = await gateway.refund(conn, key, pay.gateway_ref, amount)
    await _record(conn, key, payment_id, "refund", amount, outcome)
    if outcome.declined:
        raise PaymentDeclined(payment_id, "refund", key, outcome.reason)
    status = "refunded" if refunded + amount == captured else "partially_refunded"
    await conn.execute(
        text("UPDATE payment SET refunded = refunded + :a, status = :s WHERE id = :id"),
        {"a": amount, "s": status, "id": payment_id},
    )
    amounts = refund_split(amount, refunded, captured, int(pay.captured_tax))
    if tax is not None:  # the caller knows the tax of what it refunds (a return's units)
        amounts = {"net": amount - tax, "tax": tax, "total": amount}
    entry = await post(
        conn,
        ledger_key(key),
        event,
        [Posting.of(ln, channel=channel) for ln in lines_for(event, amounts)],
        ref=pay.ref,
        currency=pay.currency,
        memo=f"refund {payment_id}",
    )
    return PaymentResult(payment_id, key, "refund", amount, outcome.gateway_ref, entry)
