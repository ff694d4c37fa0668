"""What a payment service provider does for us, as the payment operations (models.payments)
see it: authorize, capture, void and refund, each idempotent by its key, answering approved
or declined (`GatewayOutcome`), or not in time (`GatewayTimeout`, retried with the same key).

The adapters live in activities/gateways/ (the built-in sandbox; a real provider's adapter
beside it); OMNIFLOW_PAYMENT_GATEWAY chooses one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import DomainError

APPROVED = "approved"
DECLINED = "declined"


@dataclass(frozen=True)
class GatewayOutcome:
    """A gateway's answer. `gateway_ref` names the gateway's transaction: for an
    authorization it is the handle that captures, voids and refunds quote."""

    approved: bool
    gateway_ref: str
    reason: str = ""
    replayed: bool = False  # the gateway answered from its idempotency store

    @property
    def declined(self) -> bool:
        return not self.approved

    @property
    def outcome(self) -> str:
        return APPROVED if self.approved else DECLINED


class GatewayTimeout(Exception):
    """The gateway did not answer in time: a transient error. The caller retries with the
    same key (the gateway may or may not have done the work; its idempotency key makes the
    retry safe either way)."""


class PaymentGateway(Protocol):
    """A payment service provider. Every call is idempotent by `key`."""

    name: str

    async def authorize(
        self, conn: AsyncConnection, key: str, reference: str, amount: int, currency: str
    ) -> GatewayOutcome: ...

    async def capture(
        self, conn: AsyncConnection, key: str, gateway_ref: str, amount: int
    ) -> GatewayOutcome: ...

    async def void(self, conn: AsyncConnection, key: str, gateway_ref: str) -> GatewayOutcome: ...

    async def refund(
        self, conn: AsyncConnection, key: str, gateway_ref: str, amount: int
    ) -> GatewayOutcome: ...


@dataclass
class PaymentDeclined(DomainError):
    payment_id: str
    kind: str
    key: str
    reason: str = ""
    code = "payment_declined"

    def __str__(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"the gateway declined the {self.kind} of payment {self.payment_id}{why}"

    def details(self) -> dict[str, object]:
        return {"payment_id": self.payment_id, "operation": self.kind}
