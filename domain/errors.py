"""Business outcomes that are not bugs. Activities turn them into non-retryable
ApplicationErrors; the API turns them into 409/422 problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.atp import Shortage


class DomainError(Exception):
    code = "domain_error"

    def details(self) -> dict[str, object]:
        return {}


@dataclass
class InsufficientStock(DomainError):
    sku: str
    location: str
    status: str
    lot: str
    requested: int
    on_hand: int
    available: int
    code = "insufficient_stock"

    def __str__(self) -> str:
        lot = f" lot {self.lot}" if self.lot else ""
        return (
            f"{self.sku}{lot} at {self.location} ({self.status}) has {self.available} available "
            f"({self.on_hand} on hand); cannot take {self.requested}"
        )

    def details(self) -> dict[str, object]:
        return {"sku": self.sku, "location": self.location, "stock_status": self.status, "lot": self.lot,
                "requested": self.requested, "on_hand": self.on_hand, "available": self.available}  # fmt: skip


@dataclass
class ReservationShortage(DomainError):
    shortages: list[Shortage] = field(default_factory=list)
    code = "reservation_shortage"

    def __str__(self) -> str:
        parts = [f"{s.sku}@{s.location}: asked {s.requested}, promisable {s.atp}" for s in self.shortages]
        return "not enough available-to-promise: " + "; ".join(parts)

    def details(self) -> dict[str, object]:
        return {"shortages": [s.__dict__ for s in self.shortages]}


@dataclass
class OperationConflict(DomainError):
    key: str
    code = "operation_conflict"

    def __str__(self) -> str:
        return f"operation {self.key!r} was already done with different data"


@dataclass
class UnknownReference(DomainError):
    what: str
    value: str
    code = "unknown_reference"

    def __str__(self) -> str:
        return f"unknown {self.what} {self.value!r}"


@dataclass
class InvalidStockChange(DomainError):
    reason: str
    code = "invalid_stock_change"

    def __str__(self) -> str:
        return self.reason
