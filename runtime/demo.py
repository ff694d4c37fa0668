"""Demo data for `make run`, loaded once through the public API as a client would."""

from __future__ import annotations

from typing import IO


def load_demo(api_url: str, admin_key: str, out: IO[str]) -> None:
    return None
