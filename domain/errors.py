"""The one vocabulary of business refusals. A rule that says no raises one of these, in the
API, in a workflow's update validator or in an activity; each carries its `code` (the
`ApplicationError` type it crosses Temporal as, and what a client can match on), its
`refusal` (which kind of no it is: the API answers conflict 409, invalid 422, not found 404)
and the problem `slug` the API names it by. Activities and workflows turn them into
non-retryable ApplicationErrors (workflows.contracts.refusals); the API turns an
ApplicationError back by its code (`DomainError.kind_of`), so no layer keeps a table of
another's names."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # domain.atp names its shortages' reasons from here
    from domain.atp import Shortage


class Refusal(StrEnum):
    CONFLICT = "conflict"  # the object is not in a state that allows it now
    INVALID = "invalid"  # the request is wrong whatever the state
    NOT_FOUND = "not_found"  # the request names something that is not there


class ShortageReason(StrEnum):
    """Which rule refused a line that does not fit (domain.atp.shortage_reason): the units
    are not there (`atp`), or they are but another channel's ring-fence, this channel's
    safety stock or the expiry of their lot holds them back. The same words appear in a
    refusal's problem body and on the order's timeline (`line_refused`)."""

    ATP = "atp"
    RING_FENCE = "ring_fence"
    SAFETY_STOCK = "safety_stock"
    LOT_EXPIRY = "lot_expiry"


DEFAULT_SLUG = {
    Refusal.CONFLICT: "refused",
    Refusal.INVALID: "validation-error",
    Refusal.NOT_FOUND: "not-found",
}


class DomainError(Exception):
    code: ClassVar[str] = "domain_error"
    refusal: ClassVar[Refusal] = Refusal.INVALID
    slug: ClassVar[str | None] = None  # None: DEFAULT_SLUG of the refusal
    _by_code: ClassVar[dict[str, type[DomainError]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:  # a base without a code of its own names nothing
            DomainError._by_code[cls.code] = cls

    def details(self) -> dict[str, object]:
        return {}

    @classmethod
    def problem_slug(cls) -> str:
        return cls.slug or DEFAULT_SLUG[cls.refusal]

    @staticmethod
    def kind_of(code: str | None) -> type[DomainError] | None:
        """The refusal class a code names (an ApplicationError's type), if it is one of ours."""
        return DomainError._by_code.get(code or "")


class Refused(DomainError):
    """A refusal told in a sentence, with details a client can act on."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self._details = details

    def __str__(self) -> str:
        return self.message

    def details(self) -> dict[str, object]:
        return dict(self._details)


class WrongState(Refused):
    """The step does not fit the object's state now (e.g. shipping a parcel not yet packed)."""

    code = "WrongState"
    refusal = Refusal.CONFLICT


class NotOpen(Refused):
    """A decision for an exception that is no longer (or not yet) waiting for one."""

    code = "NotOpen"
    refusal = Refusal.CONFLICT


class InvalidRequest(Refused):
    """The request itself is wrong (quantities, a missing field): no state would take it."""

    code = "Invalid"
    refusal = Refusal.INVALID


class BadAction(Refused):
    """An exception decision that is not one of the exception's actions."""

    code = "BadAction"
    refusal = Refusal.INVALID


class NotFound(Refused):
    code = "NotFound"
    refusal = Refusal.NOT_FOUND


class StepFailed(Refused):
    """A step failed for a reason that is not one of ours (reported as a conflict)."""

    code = "StepFailed"
    refusal = Refusal.CONFLICT


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
    refusal = Refusal.CONFLICT
    slug = "insufficient-stock"

    def __str__(self) -> str:
        lot = f" lot {self.lot}" if self.lot else ""
        return (
            f"{self.sku}{lot} at {self.location} ({self.status}) has {self.available} available "
            f"({self.on_hand} on hand); cannot take {self.requested}"
        )

    def details(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "location": self.location,
            "stock_status": self.status,
            "lot": self.lot,
            "requested": self.requested,
            "on_hand": self.on_hand,
            "available": self.available,
        }


@dataclass
class ReservationShortage(DomainError):
    shortages: list[Shortage] = field(default_factory=list)
    code = "reservation_shortage"
    refusal = Refusal.CONFLICT
    slug = "insufficient-stock"

    def __str__(self) -> str:
        parts = [
            f"{s.sku}@{s.location}: asked {s.requested}, promisable {s.atp} ({s.reason})"
            for s in self.shortages
        ]
        return "not enough available-to-promise: " + "; ".join(parts)

    def details(self) -> dict[str, object]:
        return {"shortages": [s.__dict__ for s in self.shortages]}


@dataclass
class OperationConflict(DomainError):
    key: str
    code = "operation_conflict"
    refusal = Refusal.CONFLICT
    slug = "operation-conflict"

    def __str__(self) -> str:
        return f"operation {self.key!r} was already done with different data"


@dataclass
class UnknownReference(DomainError):
    what: str
    value: str
    code = "unknown_reference"
    refusal = Refusal.INVALID

    def __str__(self) -> str:
        return f"unknown {self.what} {self.value!r}"


@dataclass
class InvalidStockChange(DomainError):
    reason: str
    code = "invalid_stock_change"
    refusal = Refusal.INVALID

    def __str__(self) -> str:
        return self.reason
