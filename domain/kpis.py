"""The KPI report: each KPI's definition (one text, answered with the figure and shown in the
OpenAPI document) and the arithmetic on the facts models.kpis reads from Postgres (counts,
sums and percentiles over a window). A KPI with no data yet is None, never an invented
number: a ratio with nothing to divide by, a percentile over no observations.

The window is half-open, [from, to), in UTC. Ratios are 0..1 (4 decimals), durations are
seconds (1 decimal) unless a unit says milliseconds, money is in minor units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RATIO = "ratio"
SECONDS = "seconds"
MILLISECONDS = "milliseconds"
COUNT = "count"
UNITS = "units"
MONEY = "minor currency units"

# A return line counts against a perfect order when its reason is a defect or the unit came
# back in one of these conditions (return inspection's vocabulary, domain.returns).
DEFECT_CONDITIONS: tuple[str, ...] = ("damaged", "defective")
# Returns that will not bring anything back count for no return rate or perfect order.
DEAD_RETURNS: tuple[str, ...] = ("rejected", "cancelled", "expired")
# The outcomes whose settlement gives the customer money or credit: time to refund.
REFUND_OUTCOMES: tuple[str, ...] = ("refund", "store_credit")


@dataclass(frozen=True)
class Definition:
    unit: str
    text: str
    by_channel: bool = True  # whether `channel` narrows it


_JUDGED = (
    "Orders received in the window whose outcome is known: closed (every unit shipped or "
    "cancelled) or past their ship-by time (received + OMNIFLOW_SHIP_BY_SECONDS of the order's "
    "promise, `standard` or `express`)"
)

DEFINITIONS: dict[str, Definition] = {
    "fill_rate": Definition(
        RATIO,
        f"{_JUDGED}: their order lines shipped complete (units shipped = ordered) ÷ their lines. "
        "`units`: units shipped ÷ units ordered. A cancelled or still open unit is not filled.",
    ),
    "perfect_order_rate": Definition(
        RATIO,
        f"{_JUDGED}: the share shipped complete (every unit shipped), on time (the last shipment "
        "left by the ship-by time) and neither damaged nor returned for a defect (no return line, "
        "on a return not rejected, cancelled or expired, whose reason is a defect or whose unit "
        "was inspected damaged or defective).",
    ),
    "order_cycle_time": Definition(
        SECONDS,
        "Orders received in the window that shipped everything they will ship (no unit open, "
        "something shipped): from received to the last shipment shipped. `value` = `p50`; "
        "`p95`; continuous percentiles.",
    ),
    "on_time_ship_rate": Definition(
        RATIO,
        f"{_JUDGED}, with units to ship (not cancelled whole): the share whose every unit not "
        "cancelled was shipped by the ship-by time.",
    ),
    "split_shipment_rate": Definition(
        RATIO,
        "Orders received in the window with a shipment shipped: the share that shipped in more "
        "than one shipment.",
    ),
    "backorders": Definition(
        COUNT,
        "Order lines of the orders received in the window that are backordered now: `count` "
        "(= `value`) lines, `units` backordered, `aging` `p50` / `max` seconds since each line "
        "was backordered.",
    ),
    "return_rate": Definition(
        RATIO,
        "Units on returns created in the window (not rejected, cancelled or expired) ÷ units "
        "shipped in the window. `by_sku` and `by_channel`: that SKU's or channel's returned ÷ "
        "its shipped (null when it shipped nothing); `by_reason`: a reason's returned units ÷ "
        "all units shipped.",
    ),
    "time_to_refund": Definition(
        SECONDS,
        "Returns with outcome `refund` or `store_credit` whose money was settled in the window: "
        "from the parcel's first arrival (for a line kept by the customer: the return's "
        "creation) to the settlement. `value` = `p50`; `p95`.",
    ),
    "inventory_accuracy": Definition(
        RATIO,
        "Cycle-count lines submitted in the window: the share counted exactly as the system "
        "expected (counted = expected). `within_tolerance`: the share within the count "
        "tolerance (GET /v1/cycle-counts/accuracy). Not by channel.",
        by_channel=False,
    ),
    "oversell_count": Definition(
        UNITS,
        "Now, whatever the window: units promised to orders beyond what their bucket holds: per "
        "sellable bucket, its active reservations (reservation rows: qty − consumed − released) "
        "over its on-hand units, summed; `buckets`: how many are over. Must read 0. With "
        "`channel`: the buckets holding a reservation of that channel.",
    ),
    "exceptions": Definition(
        COUNT,
        "Per kind: `open` as of the window's end (or now, if earlier), `age` `p50` / `max` "
        "seconds since those were opened, and `sla_breaches`: exceptions opened in the window "
        "whose due time passed before they were decided (or that are still open past it). "
        "`value` = open in all kinds. With `channel`: exceptions about that channel's orders, "
        "returns and publishing.",
    ),
    "margin_by_channel": Definition(
        MONEY,
        "Ledger postings in the window, per channel and currency: `revenue` (revenue, shipping "
        "revenue and return fee revenue: credit − debit) − `cogs` (cost of goods sold: debit − "
        "credit) − `refunds` (sales returns: debit − credit) = `margin`; `margin_rate` = margin "
        "÷ revenue. A posting line's channel is its own, else that of the order or return its "
        "entry is for. `value`: one row per channel and currency.",
    ),
    "supplier_otif": Definition(
        RATIO,
        "Purchase order lines of the POs sent in the window whose outcome is known (complete, "
        "past due, or on a PO expecting nothing more): the share received complete by the "
        "promised date, as in GET /v1/suppliers/{code}/scorecard; `by_supplier`. Not by channel.",
        by_channel=False,
    ),
    "dock_to_stock": Definition(
        SECONDS,
        "Purchase order receipt lines with units accepted, received in the window: from the "
        "receipt to the first move of that PO's SKU into sellable stock at or after it (at once "
        "for an item not inspected, at the QC pass for an inspected one). `value` = `p50`; "
        "`p95`; `waiting`: lines still in quarantine. Not by channel.",
        by_channel=False,
    ),
    "publish_lag": Definition(
        MILLISECONDS,
        "Deliveries of changes (deltas) to the channels' webhooks in the window: from the "
        "change's commit to the receiver's 2xx. `value` = `p50`; `p99`; `by_channel`.",
    ),
}


def ratio(part: int, whole: int) -> float | None:
    """part ÷ whole to 4 decimals; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


def seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def ratios(parts: Mapping[str, int], wholes: Mapping[str, int]) -> dict[str, float | None]:
    """Per key: its part ÷ its whole (keys of either side; None where its whole is 0)."""
    return {k: ratio(parts.get(k, 0), wholes.get(k, 0)) for k in sorted({*parts, *wholes})}


@dataclass(frozen=True)
class OrderFacts:
    """Aggregates over the orders received in a window (models.kpis)."""

    judged: int = 0  # orders whose outcome is known
    perfect: int = 0
    lines: int = 0  # of judged orders
    lines_complete: int = 0
    units: int = 0
    units_shipped: int = 0
    to_ship: int = 0  # judged orders with a unit not cancelled
    on_time: int = 0
    shipped: int = 0  # orders with a shipment shipped
    split: int = 0
    done: int = 0  # orders that shipped all they will ship: the cycle-time observations
    cycle_p50: float | None = None
    cycle_p95: float | None = None


def order_kpis(f: OrderFacts) -> dict[str, dict[str, object]]:
    """The order KPIs' figures (without unit and definition)."""
    return {
        "fill_rate": {
            "value": ratio(f.lines_complete, f.lines),
            "units": ratio(f.units_shipped, f.units),
            "counts": {
                "orders": f.judged,
                "lines": f.lines,
                "lines_complete": f.lines_complete,
                "units": f.units,
                "units_shipped": f.units_shipped,
            },
        },
        "perfect_order_rate": {
            "value": ratio(f.perfect, f.judged),
            "counts": {"orders": f.judged, "perfect": f.perfect},
        },
        "order_cycle_time": {
            "value": seconds(f.cycle_p50),
            "p50": seconds(f.cycle_p50),
            "p95": seconds(f.cycle_p95),
            "counts": {"orders": f.done},
        },
        "on_time_ship_rate": {
            "value": ratio(f.on_time, f.to_ship),
            "counts": {"orders": f.to_ship, "on_time": f.on_time},
        },
        "split_shipment_rate": {
            "value": ratio(f.split, f.shipped),
            "counts": {"orders": f.shipped, "split": f.split},
        },
    }


@dataclass(frozen=True)
class Backorders:
    orders: int = 0  # orders received in the window (none: no data yet)
    lines: int = 0
    units: int = 0
    age_p50: float | None = None
    age_max: float | None = None


def backorder_kpi(b: Backorders) -> dict[str, object]:
    """Nothing backordered among orders received is a figure (0); no orders is no data."""
    count = b.lines if b.orders else None
    return {
        "value": count,
        "count": count,
        "units": b.units,
        "aging": {"p50": seconds(b.age_p50), "max": seconds(b.age_max)},
    }
