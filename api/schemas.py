"""Request/response schema bases. Requests reject unknown fields (no mass assignment) and a
NUL character in any string (Postgres text cannot hold one: a 422 naming the field, not a 500)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

T = TypeVar("T")


def _has_nul(value: Any) -> bool:
    """A NUL in a string anywhere inside the value: lists, tuples, sets, dicts (keys too).
    Nested request models check their own fields (and name them in the error)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_nul(v) for v in value)
    return False


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain a NUL character (\\u0000)")
        return value

    def request_hash(self) -> str:
        """What was asked, defaults filled in: a retry hashes the same, other data does not
        (how a create keyed by a business id tells a retry from a conflict)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
