"""Channel publishing rules: which webhook targets we may call (no SSRF), how a run of
ATP changes becomes one delivery (latest per SKU wins, unchanged SKUs dropped, each item
with the value the receiver last got from us for compare-and-set), when a batch goes
before its window is up (a drop to zero goes at once), and how a delivery is signed.

A delivery body is `{"delivery_id", "channel", "kind": "delta"|"snapshot", "items":
[{"sku", "available", "previous"}], "sent_at"}`; its headers are `Omniflow-Delivery: <id>`
and `Omniflow-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNATURE_HEADER = "Omniflow-Signature"
DELIVERY_HEADER = "Omniflow-Delivery"
TOLERANCE_SECONDS = 300  # a receiver refuses signatures older than this (replays)


def target_problem(url: str, allowed_hosts: Iterable[str]) -> str | None:
    """Why we will not call `url`, or None. Only http(s); no credentials in the URL; the host
    is loopback or one of the allowed hosts (so a key holder cannot make us call an
    arbitrary address: the cloud metadata service, the office network)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - a port out of range is a ValueError here, not at the call
    except ValueError:
        return "the URL is not valid"
    if parts.scheme not in ("http", "https"):
        return "the URL must be http or https"
    if parts.username or parts.password:
        return "the URL must not carry credentials"
    if not host:
        return "the URL has no host"
    if host in {h.lower().rstrip(".") for h in allowed_hosts}:
        return None
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"{host} is not loopback nor an allowed host (setting OMNIFLOW_PUBLISH_ALLOWED_HOSTS)"


@dataclass(frozen=True)
class Change:
    sku: str
    available: int


@dataclass(frozen=True)
class Item:
    sku: str
    available: int
    previous: int | None  # what we last published for the SKU (None: never)


def coalesce(changes: Sequence[Change], published: Mapping[str, int]) -> list[Item]:
    """One item per SKU with its latest ATP, in the order SKUs last changed; a SKU whose
    latest value is what the receiver already has is left out."""
    latest: dict[str, int] = {}
    for c in changes:
        latest.pop(c.sku, None)
        latest[c.sku] = c.available
    return [Item(sku, n, published.get(sku)) for sku, n in latest.items() if published.get(sku) != n]


def snapshot(current: Mapping[str, int], published: Mapping[str, int]) -> list[Item]:
    """Every SKU's absolute ATP (after an outage or when switched on), sorted by SKU."""
    return [Item(sku, current[sku], published.get(sku)) for sku in sorted(current)]


def send_now(items: Sequence[Item], oldest_age_ms: float, batch_ms: int, max_batch: int) -> bool:
    """A batch goes when its window is up, when it is full, or at once for a drop to zero
    (a channel must stop selling the moment nothing is left)."""
    if not items:
        return False
    if oldest_age_ms >= batch_ms or len(items) >= max_batch:
        return True
    return any(i.available == 0 and (i.previous is None or i.previous > 0) for i in items)


def delivery_id(channel: str, start: tuple[int, int], end: tuple[int, int], kind: str) -> str:
    """The same changes give the same id, however often the delivery is retried."""
    return f"{channel}-{kind[0]}-{start[0]}.{start[1]}-{end[0]}.{end[1]}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does with `Omniflow-Signature` (also the README's snippet)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, fields.get("v1", ""))
