"""Housekeeping: the hourly purge of idempotency records and the expiry refresh."""

from dataclasses import dataclass

from workflows.contracts.activity import ActivityRef


@dataclass(frozen=True)
class HousekeepingInput:
    idempotency_ttl_hours: int = 24


@dataclass(frozen=True)
class HousekeepingResult:
    idempotency_records_purged: int
    skus_refreshed_for_expiry: int = 0


@dataclass(frozen=True)
class PurgeRecords:
    ttl_hours: int  # finished Idempotency-Key records older than this go


@dataclass(frozen=True)
class RefreshExpired:
    lookback_hours: int  # lots that expired this recently have their ATP republished


# Their results stay plain counts: recorded histories carry ints, which a dataclass result
# type could not decode on replay.
PURGE_IDEMPOTENCY_RECORDS = ActivityRef("purge_idempotency_records", PurgeRecords, int)
REFRESH_EXPIRED_AVAILABILITY = ActivityRef("refresh_expired_availability", RefreshExpired, int)
