"""Posting rules: every money event as debit and credit lines, in one readable table.

Amounts are integers in minor units. A leg whose amount is negative posts on the other side
(e.g. a favourable price variance); zero legs are dropped. Every rule balances for any
amounts (property-tested), because each rule's debits and credits are sums of the same
named amounts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# -- chart of accounts (seeded by migration 0004) --------------------------------------

CASH_CLEARING = "1000"
ACCOUNTS_RECEIVABLE = "1100"
VENDOR_RECEIVABLE = "1200"
INVENTORY = "1400"
INVENTORY_IN_TRANSIT = "1410"
RETURNS_INVENTORY = "1420"
ACCOUNTS_PAYABLE = "2000"
GOODS_RECEIVED_NOT_INVOICED = "2100"
TAX_PAYABLE = "2200"
STORE_CREDIT_LIABILITY = "2300"
OPENING_BALANCE_EQUITY = "3000"
REVENUE = "4000"
SHIPPING_REVENUE = "4100"
SALES_RETURNS = "4200"
RETURN_FEE_REVENUE = "4300"
COST_OF_GOODS_SOLD = "5000"
SHRINKAGE = "5100"
PURCHASE_PRICE_VARIANCE = "5200"
STORE_CREDIT_BONUS = "5300"

CHART: dict[str, tuple[str, str]] = {  # code -> (name, type)
    CASH_CLEARING: ("Cash clearing", "asset"),
    ACCOUNTS_RECEIVABLE: ("Accounts receivable", "asset"),
    VENDOR_RECEIVABLE: ("Vendor receivable", "asset"),
    INVENTORY: ("Inventory", "asset"),
    INVENTORY_IN_TRANSIT: ("Inventory in transit", "asset"),
    RETURNS_INVENTORY: ("Returns inventory", "asset"),
    ACCOUNTS_PAYABLE: ("Accounts payable", "liability"),
    GOODS_RECEIVED_NOT_INVOICED: ("Goods received not invoiced", "liability"),
    TAX_PAYABLE: ("Tax payable", "liability"),
    STORE_CREDIT_LIABILITY: ("Store credit liability", "liability"),
    OPENING_BALANCE_EQUITY: ("Opening balance equity", "equity"),
    REVENUE: ("Revenue", "revenue"),
    SHIPPING_REVENUE: ("Shipping revenue", "revenue"),
    SALES_RETURNS: ("Sales returns", "contra_revenue"),
    RETURN_FEE_REVENUE: ("Return fee revenue", "revenue"),
    COST_OF_GOODS_SOLD: ("Cost of goods sold", "expense"),
    SHRINKAGE: ("Shrinkage", "expense"),
    PURCHASE_PRICE_VARIANCE: ("Purchase price variance", "expense"),
    STORE_CREDIT_BONUS: ("Store credit bonus", "expense"),
}
DEBIT_NORMAL = frozenset({"asset", "expense", "contra_revenue"})
INVENTORY_ACCOUNTS = frozenset({INVENTORY, INVENTORY_IN_TRANSIT, RETURNS_INVENTORY})


@dataclass(frozen=True)
class Leg:
    side: str  # "debit" | "credit"
    account: str
    amount: str  # the name of the amount in the event


def Dr(account: str, amount: str) -> Leg:
    return Leg("debit", account, amount)


def Cr(account: str, amount: str) -> Leg:
    return Leg("credit", account, amount)


# `@to` / `@from`: the inventory account of the bucket stock moves into / out of
# (sellable, quarantine, damaged → Inventory; in_transit → Inventory in transit; returns →
# Returns inventory), so one rule serves every bucket.
TO = "@to"
FROM = "@from"

# event -> legs. The posting table of docs/architecture.md ("Ledger model"), one row per money event.
RULES: dict[str, tuple[Leg, ...]] = {
    "opening_stock":      (Dr(TO, "value"), Cr(OPENING_BALANCE_EQUITY, "value")),
    "goods_received":     (Dr(TO, "value"), Cr(GOODS_RECEIVED_NOT_INVOICED, "value")),
    "return_to_vendor":   (Dr(GOODS_RECEIVED_NOT_INVOICED, "value"), Cr(FROM, "value")),
    "vendor_bill":        (Dr(GOODS_RECEIVED_NOT_INVOICED, "received_value"), Dr(PURCHASE_PRICE_VARIANCE, "price_variance"),
                           Cr(ACCOUNTS_PAYABLE, "billed")),
    "shipment":           (Dr(COST_OF_GOODS_SOLD, "cost"), Cr(FROM, "cost")),
    "dropship_shipment":  (Dr(COST_OF_GOODS_SOLD, "cost"), Cr(GOODS_RECEIVED_NOT_INVOICED, "cost")),
    "capture":            (Dr(CASH_CLEARING, "total"), Cr(REVENUE, "revenue"), Cr(SHIPPING_REVENUE, "shipping"),
                           Cr(TAX_PAYABLE, "tax")),
    "invoice_on_account": (Dr(ACCOUNTS_RECEIVABLE, "total"), Cr(REVENUE, "revenue"), Cr(SHIPPING_REVENUE, "shipping"),
                           Cr(TAX_PAYABLE, "tax")),
    "return_received":    (Dr(TO, "cost"), Cr(COST_OF_GOODS_SOLD, "cost")),
    "restock":            (Dr(TO, "cost"), Cr(FROM, "cost")),
    "scrap":              (Dr(SHRINKAGE, "cost"), Cr(FROM, "cost")),
    "refund":             (Dr(SALES_RETURNS, "net"), Dr(TAX_PAYABLE, "tax"), Cr(CASH_CLEARING, "total")),
    "keep_item_refund":   (Dr(SALES_RETURNS, "net"), Dr(TAX_PAYABLE, "tax"), Cr(CASH_CLEARING, "total")),
    "return_fee":         (Dr(SALES_RETURNS, "fee"), Cr(RETURN_FEE_REVENUE, "fee")),
    "store_credit_issued": (Dr(SALES_RETURNS, "net"), Dr(TAX_PAYABLE, "tax"), Dr(STORE_CREDIT_BONUS, "bonus"),
                           Cr(STORE_CREDIT_LIABILITY, "total")),
    "store_credit_spent": (Dr(STORE_CREDIT_LIABILITY, "total"), Cr(REVENUE, "revenue"), Cr(SHIPPING_REVENUE, "shipping"),
                           Cr(TAX_PAYABLE, "tax")),
    "store_credit_restored": (Dr(REVENUE, "revenue"), Dr(SHIPPING_REVENUE, "shipping"), Dr(TAX_PAYABLE, "tax"),
                           Cr(STORE_CREDIT_LIABILITY, "total")),
    "vendor_claim":       (Dr(VENDOR_RECEIVABLE, "value"), Cr(FROM, "value")),
    "count_gain":         (Dr(TO, "value"), Cr(SHRINKAGE, "value")),
    "count_loss":         (Dr(SHRINKAGE, "value"), Cr(FROM, "value")),
    "transfer_ship":      (Dr(TO, "value"), Cr(FROM, "value")),
    "transfer_receive":   (Dr(TO, "value"), Cr(FROM, "value")),
    "reclassify":         (Dr(TO, "value"), Cr(FROM, "value")),
}  # fmt: skip # kept aligned: one row an event, its debit and credit columns read down

# Which inventory account holds a bucket (inbound is on order: not ours yet, not valued).
ACCOUNT_OF_STATUS: dict[str, str] = {
    "sellable": INVENTORY,
    "quarantine": INVENTORY,
    "damaged": INVENTORY,
    "in_transit": INVENTORY_IN_TRANSIT,
    "returns": RETURNS_INVENTORY,
}


def move_event(
    from_account: str | None, to_account: str | None, source: str, sink: str, reason: str
) -> str | None:
    """The posting event of one stock move. `source`/`sink` are the locations (virtual ones:
    supplier, customer, adjustment, scrap). None when no value changes accounts."""
    if from_account and to_account:
        if from_account == to_account:
            return None
        return {
            (INVENTORY, INVENTORY_IN_TRANSIT): "transfer_ship",
            (INVENTORY_IN_TRANSIT, INVENTORY): "transfer_receive",
            (RETURNS_INVENTORY, INVENTORY): "restock",
        }.get((from_account, to_account), "reclassify")
    if to_account:
        if source == "adjustment":
            return "opening_stock" if reason == "initial" else "count_gain"
        return {"customer": "return_received"}.get(source, "goods_received")
    if from_account:
        if sink == "supplier" and from_account == RETURNS_INVENTORY:
            return "vendor_claim"  # a customer's return sent on to the supplier: they owe us
        return {"customer": "shipment", "scrap": "scrap", "supplier": "return_to_vendor"}.get(
            sink, "count_loss"
        )
    return None


@dataclass(frozen=True)
class Line:
    account: str
    debit: int
    credit: int


class UnbalancedEntry(ValueError):
    pass


def lines_for(
    event: str, amounts: Mapping[str, int], *, from_account: str | None = None, to_account: str | None = None
) -> list[Line]:
    """The journal lines of one event. Raises KeyError for an unknown event or amount."""
    places = {FROM: from_account, TO: to_account}
    out: list[Line] = []
    for leg in RULES[event]:
        amount = amounts[leg.amount]
        if amount == 0:
            continue
        account = places.get(leg.account, leg.account)
        if account is None:
            raise KeyError(f"{event} needs the {leg.account} account")
        debit = (leg.side == "debit") == (amount > 0)
        out.append(Line(account, abs(amount) if debit else 0, 0 if debit else abs(amount)))
    require_balanced(out)
    return out


def require_balanced(lines: list[Line]) -> None:
    if sum(ln.debit for ln in lines) != sum(ln.credit for ln in lines):
        raise UnbalancedEntry(
            f"debits {sum(ln.debit for ln in lines)} != credits {sum(ln.credit for ln in lines)}"
        )


def store_credit_amounts(net: int, tax: int, bonus: int) -> dict[str, int]:
    return {"net": net, "tax": tax, "bonus": bonus, "total": net + tax + bonus}


def capture_amounts(revenue: int, shipping: int, tax: int) -> dict[str, int]:
    return {"revenue": revenue, "shipping": shipping, "tax": tax, "total": revenue + shipping + tax}


def refund_amounts(
    total: int, captured_total: int, captured_tax: int, refunded_before: int = 0
) -> dict[str, int]:
    """A refund returns tax in proportion to the part of the capture it refunds, computed on
    the running total (tax on everything refunded after it, less tax on what was refunded
    before), so refunds in any number of parts return exactly the captured tax in the end."""
    if captured_total <= 0:
        return {"net": 0, "tax": 0, "total": 0}

    def tax_on(amount: int) -> int:
        return captured_tax * amount // captured_total

    tax = tax_on(refunded_before + total) - tax_on(refunded_before)
    return {"net": total - tax, "tax": tax, "total": total}


def vendor_bill_amounts(received_value: int, billed: int) -> dict[str, int]:
    return {"received_value": received_value, "price_variance": billed - received_value, "billed": billed}


def take_value(qty_on_hand: int, value_on_hand: int, qty: int) -> int:
    """The value leaving with `qty` of `qty_on_hand` units at their moving average; the last
    unit takes what is left, so value reaches exactly 0 when quantity does."""
    if qty <= 0 or qty_on_hand <= 0:
        return 0
    if qty >= qty_on_hand:
        return value_on_hand
    return (value_on_hand * qty + qty_on_hand // 2) // qty_on_hand
