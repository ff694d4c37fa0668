"""Lots and expiry: first-expiry-first-out allocation; expired lots are not available."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class LotStock:
    lot: str
    expires_at: datetime | None
    available: int


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def fefo_order(lots: list[LotStock]) -> list[LotStock]:
    """Earliest expiry first; lots without expiry last; ties by lot code (deterministic)."""
    return sorted(
        lots,
        key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.max.replace(tzinfo=UTC), lot.lot),
    )


def allocate_fefo(lots: list[LotStock], qty: int, now: datetime) -> list[tuple[str, int]]:
    """Split `qty` over unexpired lots, earliest expiry first. Raises ValueError if short."""
    plan: list[tuple[str, int]] = []
    left = qty
    for lot in fefo_order([lot for lot in lots if not is_expired(lot.expires_at, now)]):
        if left == 0:
            break
        take = min(left, lot.available)
        if take > 0:
            plan.append((lot.lot, take))
            left -= take
    if left:
        raise ValueError(f"short by {left} units")
    return plan
