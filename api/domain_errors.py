"""Business refusals as problems. Each refusal of domain.errors says which kind of no it is;
the API answers each kind with one status, and names the problem by the refusal's slug."""

from __future__ import annotations

from collections.abc import Mapping

from api.problems import Problem
from domain.errors import DomainError, Refusal, UnknownReference

STATUS_OF = {Refusal.CONFLICT: 409, Refusal.INVALID: 422, Refusal.NOT_FOUND: 404}


def as_problem(exc: DomainError, field_of: Mapping[str, list[str | int]] | None = None) -> Problem:
    """`field_of` maps a reference kind ("SKU", "location", "channel") to its body location."""
    status, slug = STATUS_OF[exc.refusal], exc.problem_slug()
    if exc.refusal is Refusal.INVALID:
        loc = (field_of or {}).get(exc.what, ["body"]) if isinstance(exc, UnknownReference) else ["body"]
        return Problem(status, str(exc), slug=slug, errors=[{"loc": loc, "msg": str(exc)}])
    problem = Problem(status, str(exc), slug=slug)
    problem.extra.update(exc.details())
    return problem
