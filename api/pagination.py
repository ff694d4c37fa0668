"""Keyset pagination: `?limit=` (default 50, max 500) and an opaque `?cursor=`."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Depends, Query

from api.deps import built_in_loop
from api.problems import Problem


class PageParams:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=500, description="Page size (max 500).")] = 50,
        cursor: Annotated[
            str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
        ] = None,
    ) -> None:
        self.limit = limit
        self.after: list[Any] | None = decode_cursor(cursor) if cursor else None


PageDep = Annotated[PageParams, Depends(built_in_loop(PageParams))]


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        raise Problem(
            400, "the cursor is not valid (use next_cursor from the previous page)", slug="bad-cursor"
        ) from None
    if not isinstance(values, list):
        raise Problem(
            400, "the cursor is not valid (use next_cursor from the previous page)", slug="bad-cursor"
        )
    return values


def next_cursor(rows: list[Any], limit: int, key: Any) -> str | None:
    """`rows` was fetched with LIMIT limit+1; `key(row)` gives the sort key values of a row."""
    if len(rows) <= limit:
        return None
    return encode_cursor(list(key(rows[limit - 1])))
