"""What no log line may carry in clear: a customer's email and postal address, a payment
reference, an API key, a webhook signing secret, a password. One structlog processor masks
them in every line — ours and the standard library's (uvicorn, temporalio, SQLAlchemy) — by
the name of a field (at any depth of dicts and lists) and by their shape anywhere in a string
(the message, a rendered exception):

- an email `ada@example.com` → `a***@example.com`;
- an address (`ship_to`, `billing_address`, …) → its fields `***`, the country kept;
- a payment reference (`reference`, `payment_reference`) → `***` and its last 4 characters;
- an API key `omf_…` → its first 12 characters (the prefix `GET /v1/api-keys` shows) and `…`;
- a signing secret `whsec_…`, a bearer token, a password in a URL, any `secret` / `password` /
  `authorization` / `api_key` / `token` field → `***`.

Database errors carry no bound parameters in the first place (runtime.db: hide_parameters)."""

from __future__ import annotations

import re
from typing import Any

import structlog

MASK = "***"
_EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_API_KEY = re.compile(r"\b(omf_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")
_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@/\s]+@")

_SECRET_FIELDS = {"secret", "signing_secret", "password", "authorization", "api_key", "admin_key", "token"}
_REFERENCE_FIELDS = {"reference", "payment_reference"}
_EMAIL_FIELDS = {"email", "customer_email"}
_ADDRESS_FIELDS = {"ship_to", "billing_address", "address", "line1", "line2", "postal_code", "phone"}
_ADDRESS_KEPT = {"country"}


def mask_text(text: str) -> str:
    text = _EMAIL.sub(lambda m: f"{m.group(1)}{MASK}@{m.group(2)}", text)
    text = _API_KEY.sub(lambda m: f"{m.group(1)}…", text)
    text = _SECRET.sub(f"whsec_{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)


def mask_reference(value: Any) -> str:
    text = str(value)
    return f"{MASK}{text[-4:]}" if len(text) >= 8 else MASK


def _mask_address(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (v if k in _ADDRESS_KEPT else MASK) for k, v in value.items()}
    return MASK if value else value


def mask_value(name: str, value: Any) -> Any:
    """`value` as a log line may carry it under the field `name`."""
    field = name.lower()
    if value is None or value == "":
        return value
    if field in _SECRET_FIELDS:
        return MASK
    if field in _REFERENCE_FIELDS:
        return mask_reference(value)
    if field in _ADDRESS_FIELDS:
        return _mask_address(value)
    if field in _EMAIL_FIELDS and isinstance(value, str):
        return mask_text(value) if "@" in value else MASK
    return _masked(value)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, int | float | bool):
        return value
    return mask_text(str(value))  # an object logged as itself: as its text would show


def mask_sensitive(_: object, __: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    """The structlog processor: every field of the line, masked."""
    return {k: mask_value(k, v) for k, v in event_dict.items()}
