"""The quantities of an order line (`LineQty`), by where its units are. Every unit of a line
is in exactly one place:

    ordered = unassigned + reserved + backordered + shipped + cancelled
    returned <= shipped           (a return is a later fact about shipped units)

Operations move units between places and return a new value; an operation that would break
an invariant raises `LineChangeRefused` and changes nothing. `units_to_cancel` (domain.orders)
says what a cancel request takes (or why it is refused)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from domain.errors import DomainError, Refusal


@dataclass
class LineChangeRefused(DomainError):
    """Asked to move more units than the line has in that place (or a negative amount)."""

    op: str
    requested: int
    allowed: int
    code = "line_change_refused"
    refusal = Refusal.CONFLICT

    def __str__(self) -> str:
        return f"cannot {self.op} {self.requested}: at most {self.allowed}"

    def details(self) -> dict[str, object]:
        return {"op": self.op, "requested": self.requested, "allowed": self.allowed}


@dataclass(frozen=True)
class LineQty:
    """The units of one order line by where they are (API: order line fields)."""

    ordered: int
    reserved: int = 0  # held at a location, not yet shipped
    backordered: int = 0  # waiting for stock
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0  # of the shipped units

    @property
    def unassigned(self) -> int:
        """Neither reserved nor backordered, shipped or cancelled: not yet sourced (or
        released after a short pick, waiting to be sourced again)."""
        return self.ordered - self.reserved - self.backordered - self.shipped - self.cancelled

    @property
    def open(self) -> int:
        """Units that may still ship, and so may still be cancelled."""
        return self.ordered - self.shipped - self.cancelled

    def problems(self) -> list[str]:
        out = [f"{name} is negative" for name, value in self._fields() if value < 0]
        if self.shipped + self.cancelled > self.ordered:
            out.append("shipped + cancelled exceeds ordered")
        if self.reserved + self.backordered + self.shipped + self.cancelled > self.ordered:
            out.append("reserved + backordered + shipped + cancelled exceeds ordered")
        if self.returned > self.shipped:
            out.append("returned exceeds shipped")
        return out

    def check(self) -> bool:
        """The order line invariants ("shipped + cancelled <= ordered per line; returned
        <= shipped"), plus: every unit is in at most one place, nothing negative."""
        return not self.problems()

    def _fields(self) -> list[tuple[str, int]]:
        return [
            ("ordered", self.ordered),
            ("reserved", self.reserved),
            ("backordered", self.backordered),
            ("shipped", self.shipped),
            ("cancelled", self.cancelled),
            ("returned", self.returned),
        ]

    # Each operation moves n units and returns the new line; n outside 0..allowed raises.

    def reserve(self, n: int) -> LineQty:
        """Reserve unassigned units first, then backordered ones (the stock they waited
        for has arrived)."""
        require_units("reserve", n, self.unassigned + self.backordered)
        from_unassigned = min(n, self.unassigned)
        return replace(self, reserved=self.reserved + n, backordered=self.backordered - (n - from_unassigned))

    def release(self, n: int) -> LineQty:
        """Give reserved units back (short pick, lost reservation): they are unassigned
        again, to be sourced again."""
        require_units("release", n, self.reserved)
        return replace(self, reserved=self.reserved - n)

    def backorder(self, n: int) -> LineQty:
        require_units("backorder", n, self.unassigned)
        return replace(self, backordered=self.backordered + n)

    def ship(self, n: int) -> LineQty:
        """Only reserved units ship: a reservation is consumed at shipment."""
        require_units("ship", n, self.reserved)
        return replace(self, reserved=self.reserved - n, shipped=self.shipped + n)

    def cancel(self, n: int) -> LineQty:
        """Cancel n unshipped units: first those holding nothing (unassigned), then the
        backordered ones, reserved ones last, so what is left is what ships soonest and
        as few reservations as possible are released."""
        require_units("cancel", n, self.open)
        left = n
        take_unassigned = min(left, self.unassigned)
        left -= take_unassigned
        take_backordered = min(left, self.backordered)
        left -= take_backordered
        return replace(
            self,
            backordered=self.backordered - take_backordered,
            reserved=self.reserved - left,
            cancelled=self.cancelled + n,
        )

    def return_(self, n: int) -> LineQty:
        require_units("return", n, self.shipped - self.returned)
        return replace(self, returned=self.returned + n)


def require_units(op: str, n: int, allowed: int) -> None:
    if n < 0 or n > allowed:
        raise LineChangeRefused(op=op, requested=n, allowed=max(allowed, 0))
