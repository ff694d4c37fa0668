"""What the warehouse may do to a shipment: pick, pack and ship, each allowed from one status
and with quantities that must add up. The order workflow's update validators call these on
the order as it last saw it (so a wrong request is refused before any work) and the
activities call them again on the rows they have just locked (so a race between the two
cannot slip through): one rule, two places that ask it.

A shipment of `kind` stock is picked (`allocated` → `picked`), packed (→ `packed`) and
shipped (→ `shipped`); a drop-ship shipment is `requested` from its supplier and only ships."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol

from domain import waves
from domain.errors import InvalidRequest, NotFound, WrongState

SHORT_REASONS = ("missing", "damaged")  # missing: a count loss; damaged: the units go to `damaged`
IN_WAREHOUSE = ("picked", "packed")  # a shipment in these is being worked on (the order is in fulfilment)
OPEN_STATUSES = ("requested", "allocated", "picked", "packed")  # not shipped, not cancelled


class ShipmentLine(Protocol):
    @property
    def line(self) -> str: ...
    @property
    def sku(self) -> str: ...
    @property
    def qty(self) -> int: ...
    @property
    def picked(self) -> int: ...


class Shipment(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...  # stock | dropship
    @property
    def status(self) -> str: ...
    @property
    def lines(self) -> Sequence[ShipmentLine]: ...


def find(shipments: Iterable[Shipment], shipment_id: str) -> Shipment:
    for shipment in shipments:
        if shipment.id == shipment_id:
            return shipment
    raise NotFound(f"shipment {shipment_id} is not part of this order")


def expect_status(shipment: Shipment, status: str) -> None:
    if shipment.status != status:
        raise WrongState(
            f"shipment {shipment.id} is {shipment.status}, not {status}", shipment_status=shipment.status
        )


def ready_to_ship(shipment: Shipment) -> str:
    """The status a shipment ships from: packed for stock, requested for drop-ship."""
    return "packed" if shipment.kind == "stock" else "requested"


STOCK_STEPS = ("pick", "pack", "ship")
_STEPS_BY_STATUS = {"picked": 1, "packed": 2, "shipped": 3}


def steps_before(kind: str, status: str, step: str) -> tuple[str, ...]:
    """Of the steps that come before `step`, those a shipment of `kind` at `status` has been
    through (in their order): a stock shipment packed has been picked and packed; a drop-ship
    shipment has no step before it ships."""
    if kind != "stock" or step not in STOCK_STEPS:
        return ()
    taken = _STEPS_BY_STATUS.get(status, 0)
    return STOCK_STEPS[: min(taken, STOCK_STEPS.index(step))]


def check_pick(shipment: Shipment, picked: Iterable[tuple[str, int]], short_reason: str) -> dict[str, int]:
    """Units picked per SKU, refused unless the shipment waits to be picked and every SKU of
    it is reported (0 when none was found), none more than it holds, nothing else."""
    expect_status(shipment, "allocated")
    if shipment.kind != "stock":
        raise WrongState(f"shipment {shipment.id} is drop-shipped by its supplier: nothing to pick")
    wanted: dict[str, int] = defaultdict(int)
    for ln in shipment.lines:
        wanted[ln.sku] += ln.qty
    got: dict[str, int] = defaultdict(int)
    for sku, qty in picked:
        if sku not in wanted:
            raise InvalidRequest(f"{sku} is not on shipment {shipment.id}")
        if qty < 0:
            raise InvalidRequest(f"{sku}: a picked quantity is not negative")
        got[sku] += qty
    for sku, n in wanted.items():
        if sku not in got:
            raise InvalidRequest(f"report every SKU of the shipment: {sku} is missing (0 if none was found)")
        if got[sku] > n:
            raise InvalidRequest(f"{sku}: picked {got[sku]}, the shipment holds {n}")
    if short_reason not in SHORT_REASONS:
        raise InvalidRequest("short_reason is missing or damaged")
    return dict(got)


def short_lines(shipment: Shipment, picked: dict[str, int]) -> dict[str, int]:
    """Order line → units the shelf did not have."""
    return {
        ln.line: ln.qty - picked.get(ln.sku, 0) for ln in shipment.lines if ln.qty > picked.get(ln.sku, 0)
    }


def check_pack(shipment: Shipment, service: str, packages: Sequence[waves.Package]) -> None:
    """Refused unless the shipment is picked, the service is a carrier's and the packages
    hold exactly what was picked, each within the service's limits."""
    expect_status(shipment, "picked")
    limits = waves.CARRIER_LIMITS.get(service)
    if limits is None:
        raise InvalidRequest(f"unknown service {service!r}; one of {sorted(waves.CARRIER_LIMITS)}")
    picked: dict[str, int] = defaultdict(int)
    for ln in shipment.lines:
        picked[ln.sku] += ln.picked
    problems = waves.validate_pack({k: v for k, v in picked.items() if v}, list(packages), limits)
    if problems:
        raise InvalidRequest("the packages do not match: " + "; ".join(problems), problems=problems)


def check_ship(shipment: Shipment, carrier: str) -> None:
    expect_status(shipment, ready_to_ship(shipment))
    if not carrier.strip():
        raise InvalidRequest("name the carrier")
