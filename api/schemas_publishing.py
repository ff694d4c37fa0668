"""Request and response shapes of channel publishing (docs/api.md, "Channel publishing"): a
channel's webhook target, its secret (answered once), and the publisher's status."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas import RequestModel, ResponseModel


class PublishingBody(RequestModel):
    url: str = Field(
        min_length=1,
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$",
        description="The webhook: http(s), no credentials, loopback or an allowed host (OMNIFLOW_PUBLISH_ALLOWED_HOSTS).",
    )
    enabled: bool = Field(default=True, description="Off: nothing is sent; on again: a full snapshot first.")
    batch_ms: int = Field(default=200, ge=0, le=60_000, description="Changes are coalesced this long.")
    max_batch: int = Field(default=500, ge=1, le=5000, description="SKUs in one delivery at most.")
    rate_per_s: float = Field(default=10, gt=0, le=1000, description="Deliveries per second at most.")
    rotate_secret: bool = Field(default=False, description="Issue a new signing secret (answered once).")


class PublishingRead(ResponseModel):
    channel: str
    url: str
    enabled: bool
    batch_ms: int
    max_batch: int
    rate_per_s: float
    created_at: datetime
    updated_at: datetime


class PublishingPut(PublishingRead):
    secret: str | None = Field(
        default=None,
        description="The signing secret: only when the target is created or the secret rotated; keep it.",
    )


class PublishingStatus(ResponseModel):
    channel: str
    cursor: str = Field(description="Opaque: how far the change feed was delivered.")
    enabled: bool
    paused: bool
    snapshot_due: bool = Field(description="The next delivery is a full snapshot.")
    failing_since: datetime | None
    last_delivery_at: datetime | None
    lag_ms_p50: float | None = Field(description="Of the last deliveries of changes: commit to the 2xx.")
    lag_ms_p99: float | None
