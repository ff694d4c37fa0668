"""The plain model of the books that the inventory core's state machine
(test_stock_properties.py) checks models/stock.py against: the catalog it seeds, the kits'
recipes, the lots, a reservation row, and what a reservation request should come to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.atp import (
    AvailabilitySnapshot,
    Shortage,
)
from models.stock import ReserveLine

CHANNELS = ("web", "marketplace", "b2b")
LOCATIONS = ("DC-EAST", "DC-WEST", "STORE-SF")
SKUS = ("TEE", "MUG", "COFFEE")
RESERVABLE = ("TEE", "MUG", "COFFEE", "GIFT")
STATUSES = ("sellable", "sellable", "quarantine", "damaged", "returns")
CHANNEL_LOCATIONS = {"web": list(LOCATIONS), "marketplace": ["DC-EAST", "DC-WEST"], "b2b": ["DC-EAST"]}
RECIPES = {"GIFT": {"MUG": 2, "TEE": 1}}
SAFETY = {("web", "TEE"): 2, ("b2b", "MUG"): 1, ("marketplace", "COFFEE"): 1}
FENCES = {("TEE", "DC-EAST"): {"marketplace": 4}, ("MUG", "DC-EAST"): {"b2b": 3}}
_NOW = datetime.now(UTC).replace(microsecond=0)
LOTS = {"COFFEE": {"L-A": _NOW + timedelta(days=30), "L-B": _NOW + timedelta(days=90)}}


def lots_of(sku: str) -> list[str]:
    return sorted(LOTS.get(sku, {"": None}))


def expiry_of(sku: str, lot: str) -> datetime | None:
    return LOTS.get(sku, {}).get(lot)


@dataclass
class ModelRow:
    id: int
    key: str
    line: str
    channel: str
    sku: str
    location: str
    lot: str
    qty: int
    used: int = 0  # consumed + released

    @property
    def active(self) -> int:
        return self.qty - self.used


Bucket = tuple[str, str, str, str]  # sku, location, status, lot


def expand_kits(request: list[ReserveLine]) -> list[ReserveLine]:
    """What the core reserves for a request: kits as their components (`1/TEE`, `1/MUG`)."""
    expanded: list[ReserveLine] = []
    for ln in request:
        if ln.sku in RECIPES:
            expanded += [
                ReserveLine(f"{ln.line}/{c}", c, ln.location, ln.qty * n)
                for c, n in sorted(RECIPES[ln.sku].items())
            ]
        else:
            expanded.append(ln)
    return expanded


def kit_shortages(snap: AvailabilitySnapshot, channel: str, request: list[ReserveLine]) -> list[Shortage]:
    """A kit also answers to its own ATP (its safety stock): one shortage a kit asked for over it,
    on the kit's first line."""
    kit_asks: dict[str, int] = {}
    for ln in request:
        if ln.sku in RECIPES:
            kit_asks[ln.sku] = kit_asks.get(ln.sku, 0) + ln.qty
    shortages = []
    for kit, qty in sorted(kit_asks.items()):
        if qty > (have := snap.atp(channel, kit)):
            first = next(ln for ln in request if ln.sku == kit)
            shortages.append(
                Shortage(line=first.line, sku=kit, location=first.location, requested=qty, atp=have)
            )
    return shortages
