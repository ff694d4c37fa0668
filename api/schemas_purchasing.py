"""Request and response shapes of the purchasing API (docs/api.md, "Purchasing")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from api.schemas import RequestModel, ResponseModel

CODE = r"^[A-Za-z0-9._-]{1,64}$"


def _once(skus: list[str]) -> None:
    if len(skus) != len(set(skus)):
        raise ValueError("each SKU once")


# -- supplier items ------------------------------------------------------------------------


class SupplierItemBody(RequestModel):
    cost: int = Field(ge=0, le=10**9, description="Unit cost in minor units.")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    moq: int = Field(default=1, ge=1, le=10**6)
    order_multiple: int = Field(default=1, ge=1, le=10**6)
    lead_time_days: int | None = Field(default=None, ge=0, le=3650, description="None: the supplier's.")
    inspect: bool = Field(default=False, description="Receipts go to quarantine until QC.")


class SupplierItemRead(ResponseModel):
    supplier: str
    sku: str
    cost: int
    currency: str
    moq: int
    order_multiple: int
    lead_time_days: int
    inspect: bool


# -- purchase orders -------------------------------------------------------------------------


class PoLineCreate(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=10**6)
    unit_cost: int | None = Field(default=None, ge=0, le=10**9, description="None: the supplier item's cost.")


class PoCreate(RequestModel):
    number: str = Field(pattern=CODE, description="Your PO number: the business key.")
    supplier: str = Field(pattern=CODE)
    location: str = Field(pattern=CODE)
    lines: list[PoLineCreate] = Field(min_length=1, max_length=500)
    expected_at: datetime | None = Field(default=None, description="None: today plus the longest lead time.")

    @field_validator("lines")
    @classmethod
    def unique(cls, lines: list[PoLineCreate]) -> list[PoLineCreate]:
        _once([ln.sku for ln in lines])
        return lines


class DecisionBody(RequestModel):
    reason: str = Field(default="", max_length=500)


class ConfirmLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(ge=0, le=10**6)
    promised_at: datetime | None = None


class ConfirmBody(RequestModel):
    lines: list[ConfirmLineBody] = Field(min_length=1, max_length=500)

    @field_validator("lines")
    @classmethod
    def unique(cls, lines: list[ConfirmLineBody]) -> list[ConfirmLineBody]:
        _once([ln.sku for ln in lines])
        return lines


class ReceiptLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty_received: int = Field(ge=0, le=10**6)
    qty_damaged: int = Field(default=0, ge=0, le=10**6)
    lot: str = Field(default="", max_length=64)
    expires_at: datetime | None = None


class ReceiptBody(RequestModel):
    receipt: str = Field(pattern=CODE, description="The receipt number: its business key.")
    lines: list[ReceiptLineBody] = Field(min_length=1, max_length=500)
    final: bool = Field(default=False, description="Nothing more will come: what is still open is short.")


class QcLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=10**6)
    result: Literal["pass", "fail"]
    disposition: Literal["return_to_vendor", "scrap", ""] = ""


class QcBody(RequestModel):
    lines: list[QcLineBody] = Field(min_length=1, max_length=500)


class BillLineBody(RequestModel):
    sku: str = Field(pattern=CODE)
    qty: int = Field(gt=0, le=10**6)
    unit_cost: int = Field(ge=0, le=10**9)


class BillBody(RequestModel):
    invoice_number: str = Field(pattern=CODE)
    lines: list[BillLineBody] = Field(min_length=1, max_length=500)

    @field_validator("lines")
    @classmethod
    def unique(cls, lines: list[BillLineBody]) -> list[BillLineBody]:
        _once([ln.sku for ln in lines])
        return lines


class CancelBody(RequestModel):
    reason: str = Field(min_length=1, max_length=500)


class PoLineRead(ResponseModel):
    sku: str
    qty: int
    unit_cost: int
    confirmed: int | None
    promised_at: datetime | None
    received: int
    damaged: int
    quarantined: int
    rejected: int
    returned: int
    closed: int
    billed: int
    inbound: int  # still expected


class PoRead(ResponseModel):
    number: str
    supplier: str
    location: str
    status: str
    currency: str
    value: int
    expected_at: datetime
    source: str
    run_id: str | None
    note: str
    workflow_id: str
    lines: list[PoLineRead]
    receipts: list[dict[str, Any]]
    bills: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
