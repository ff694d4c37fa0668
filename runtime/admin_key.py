"""The bootstrap admin key: from OMNIFLOW_ADMIN_KEY, else generated once and kept in the
data directory so a second `make run` prints the same key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import Engine, text

from models.auth import issue_key_row

KEY_PREFIX = "omf_"


def resolve_admin_key(explicit: str | None, data_dir: Path) -> tuple[str, bool]:
    """Return (key, generated_here)."""
    if explicit:
        return explicit, False
    path = data_dir / "admin_key"
    if path.exists():
        return path.read_text().strip(), False
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, True


def install_key(
    engine: Engine,
    secret: str,
    *,
    role: str,
    name: str,
    channel: str | None = None,
    key_id: str | None = None,
) -> str:
    """Store a key's hash unless it is already there; returns the key id."""
    row = issue_key_row(
        key_id=key_id or f"key_{secrets.token_urlsafe(12)}",
        name=name,
        role=role,
        channel=channel,
        secret=secret,
    )
    with engine.begin() as conn:
        existing = conn.execute(
            text("SELECT id FROM api_key WHERE key_hash = :h"), {"h": row["key_hash"]}
        ).first()
        if existing is not None:
            return str(existing.id)
        conn.execute(
            text(
                "INSERT INTO api_key (id, name, role, channel, key_hash, prefix) "
                "VALUES (:id, :name, :role, :channel, :key_hash, :prefix)"
            ),
            row,
        )
    return str(row["id"])
