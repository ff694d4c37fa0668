"""SQLModel tables: the state of record. Importing this package registers every table
on `SQLModel.metadata` (Alembic and tests rely on that)."""

from models.audit import AuditEntry
from models.auth import ApiKey
from models.catalog import (
    Channel,
    ChannelLocation,
    ChannelPolicy,
    ChannelRingfence,
    Location,
    Sku,
    SkuComponent,
    Supplier,
    SupplierItem,
)
from models.exceptions import ExceptionCase
from models.idempotency import IdempotencyRecord
from models.inventory import (
    AvailabilityEvent,
    ChannelAvailability,
    ChannelReserved,
    Reservation,
    StockArrival,
    StockBalance,
    StockMove,
    StockOperation,
)
from models.ledger import (
    Account,
    InventoryValue,
    JournalEntry,
    JournalLine,
    Payment,
    PaymentOperation,
    SandboxBehaviour,
    SandboxTransaction,
)
from models.operations import CycleCount, CycleCountLine, Transfer, TransferLine
from models.orders import OrderEvent, OrderLine, SalesOrder, Shipment, ShipmentLine
from models.publishing import ChannelPublished, ChannelPublishing, PublishDelivery
from models.purchasing import (
    PurchaseOrder,
    PurchaseOrderEvent,
    PurchaseOrderLine,
    PurchaseReceipt,
    ReplenishmentFactor,
    ReplenishmentPolicy,
    ReplenishmentRun,
    VendorBill,
)
from models.returns import (
    OrderPrereservation,
    ReturnEvent,
    ReturnLine,
    ReturnReason,
    SalesReturn,
    StoreCreditEntry,
)

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "AvailabilityEvent",
    "Channel",
    "ChannelAvailability",
    "ChannelLocation",
    "ChannelPolicy",
    "ChannelPublished",
    "ChannelPublishing",
    "ChannelReserved",
    "ChannelRingfence",
    "CycleCount",
    "CycleCountLine",
    "ExceptionCase",
    "IdempotencyRecord",
    "InventoryValue",
    "JournalEntry",
    "JournalLine",
    "Location",
    "OrderEvent",
    "OrderLine",
    "OrderPrereservation",
    "Payment",
    "PaymentOperation",
    "PublishDelivery",
    "PurchaseOrder",
    "PurchaseOrderEvent",
    "PurchaseOrderLine",
    "PurchaseReceipt",
    "ReplenishmentFactor",
    "ReplenishmentPolicy",
    "ReplenishmentRun",
    "Reservation",
    "ReturnEvent",
    "ReturnLine",
    "ReturnReason",
    "SalesOrder",
    "SalesReturn",
    "SandboxBehaviour",
    "SandboxTransaction",
    "Shipment",
    "ShipmentLine",
    "Sku",
    "SkuComponent",
    "StockArrival",
    "StockBalance",
    "StockMove",
    "StockOperation",
    "StoreCreditEntry",
    "Supplier",
    "SupplierItem",
    "Transfer",
    "TransferLine",
    "VendorBill",
]
