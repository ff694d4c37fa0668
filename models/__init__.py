"""SQLModel tables: the state of record. Importing this package registers every table
on `SQLModel.metadata` (Alembic and tests rely on that)."""

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

__all__ = [
    "Account",
    "ApiKey",
    "AvailabilityEvent",
    "Channel",
    "ChannelAvailability",
    "ChannelLocation",
    "ChannelPolicy",
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
    "Payment",
    "PaymentOperation",
    "PurchaseOrder",
    "PurchaseOrderEvent",
    "PurchaseOrderLine",
    "PurchaseReceipt",
    "ReplenishmentFactor",
    "ReplenishmentPolicy",
    "ReplenishmentRun",
    "Reservation",
    "SalesOrder",
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
    "Supplier",
    "SupplierItem",
    "Transfer",
    "TransferLine",
    "VendorBill",
]
