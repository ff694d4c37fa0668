"""Transfers between locations: input, the warehouse's ship and receive, the state."""

from dataclasses import dataclass

from domain.audit import Actor
from workflows.contracts.activity import ActivityRef
from workflows.contracts.exceptions import ExceptionPolicyInput, Resolution


@dataclass(frozen=True)
class TransferLineIn:
    sku: str
    qty: int
    lot: str = ""


@dataclass(frozen=True)
class TransferInput:
    number: str
    from_location: str
    to_location: str
    lines: list[TransferLineIn]
    discrepancy_policy: ExceptionPolicyInput


@dataclass(frozen=True)
class ReceivedLine:
    sku: str
    qty_received: int
    qty_damaged: int = 0
    lot: str = ""


@dataclass(frozen=True)
class ShipTransfer:
    carrier: str = ""
    tracking: str = ""
    actor: Actor | None = None  # the person, for the audit trail (None in older histories)


@dataclass(frozen=True)
class ReceiveTransfer:
    lines: list[ReceivedLine]
    actor: Actor | None = None


@dataclass(frozen=True)
class TransferState:
    number: str
    status: str
    open_exception: str | None = None
    value_at_risk: int = 0  # missing + damaged units at moving-average cost (minor units)


def transfer_workflow_id(number: str) -> str:
    return f"transfer-{number}"


# -- the steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferShipment:
    number: str
    actor: Actor | None = None  # from the ship request


@dataclass(frozen=True)
class TransferReceipt:
    number: str
    receipt: ReceiveTransfer


@dataclass(frozen=True)
class TransferDecision:
    number: str
    resolution: Resolution


SHIP_TRANSFER = ActivityRef("ship_transfer", TransferShipment, TransferState)
RECEIVE_TRANSFER = ActivityRef("receive_transfer", TransferReceipt, TransferState)
SETTLE_TRANSFER_DISCREPANCY = ActivityRef("settle_transfer_discrepancy", TransferDecision, TransferState)
