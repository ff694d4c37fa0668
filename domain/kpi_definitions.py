"""The KPI report's definitions: each KPI's unit and the text that says what it counts, over
which window and how. The one source of that text: the report answers it as `definition`, the
OpenAPI document shows it as the KPI's description, docs/kpis.md quotes it."""

from __future__ import annotations

from dataclasses import dataclass

RATIO = "ratio"
SECONDS = "seconds"
MILLISECONDS = "milliseconds"
COUNT = "count"
UNITS = "units"
MONEY = "minor currency units"


@dataclass(frozen=True)
class Definition:
    unit: str
    text: str
    channel_scoped: bool = True  # whether `channel` narrows it


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
        "all units shipped. Null until the first return is ever asked for.",
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
        channel_scoped=False,
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
        "entry is for. `value`: one row per channel and currency (null: no postings).",
    ),
    "supplier_otif": Definition(
        RATIO,
        "Purchase order lines of the POs sent in the window whose outcome is known (complete, "
        "past due, or on a PO expecting nothing more): the share received complete by the "
        "promised date, as in GET /v1/suppliers/{code}/scorecard; `by_supplier`. Not by channel.",
        channel_scoped=False,
    ),
    "dock_to_stock": Definition(
        SECONDS,
        "Purchase order receipt lines with units accepted, received in the window: from the "
        "receipt to the first move of that PO's SKU into sellable stock at or after it (at once "
        "for an item not inspected, at the QC pass for an inspected one). `value` = `p50`; "
        "`p95`; `waiting`: lines whose units are not (yet) sellable (in quarantine, or failed "
        "QC). Not by channel.",
        channel_scoped=False,
    ),
    "publish_lag": Definition(
        MILLISECONDS,
        "Deliveries of changes (deltas) to the channels' webhooks in the window: from the "
        "change's commit to the receiver's 2xx. `value` = `p50`; `p99`; `by_channel`.",
    ),
}
