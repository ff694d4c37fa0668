"""Business outcomes from the core, as problems: refusals are 409, bad references 422."""

from __future__ import annotations

from collections.abc import Mapping

from api.problems import Problem
from domain.errors import (
    DomainError,
    InsufficientStock,
    InvalidStockChange,
    OperationConflict,
    ReservationShortage,
    UnknownReference,
)


def as_problem(exc: DomainError, field_of: Mapping[str, list[str | int]] | None = None) -> Problem:
    """`field_of` maps a reference kind ("SKU", "location", "channel") to its body location."""
    if isinstance(exc, InsufficientStock | ReservationShortage):
        problem = Problem(409, str(exc), slug="insufficient-stock")
        problem.extra.update(exc.details())
        return problem
    if isinstance(exc, OperationConflict):
        return Problem(409, str(exc), slug="operation-conflict")
    if isinstance(exc, UnknownReference):
        loc = (field_of or {}).get(exc.what, ["body"])
        return Problem(422, str(exc), slug="validation-error", errors=[{"loc": loc, "msg": str(exc)}])
    if isinstance(exc, InvalidStockChange):
        return Problem(422, str(exc), slug="validation-error", errors=[{"loc": ["body"], "msg": str(exc)}])
    return Problem(422, str(exc), slug="validation-error")
