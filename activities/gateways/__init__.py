"""The payment gateways the worker can charge through, by name; OMNIFLOW_PAYMENT_GATEWAY
chooses one (`sandbox` by default). Each implements models.payment_gateway.PaymentGateway.

A real provider's adapter is a module beside sandbox.py and one entry in GATEWAYS: a
factory that builds it from the settings (its credentials and URLs are settings too)."""

from __future__ import annotations

from collections.abc import Callable

from activities.gateways.sandbox import SandboxGateway
from models.payment_gateway import PaymentGateway
from runtime.errors import StartupError
from runtime.settings import Settings

GatewayFactory = Callable[[Settings], PaymentGateway]

GATEWAYS: dict[str, GatewayFactory] = {
    "sandbox": lambda settings: SandboxGateway(),
}


def gateway_factory(name: str) -> GatewayFactory:
    """The factory registered as `name`; a StartupError naming the setting if there is none."""
    try:
        return GATEWAYS[name]
    except KeyError:
        raise StartupError(
            "OMNIFLOW_PAYMENT_GATEWAY", f"unknown payment gateway {name!r} (one of: {', '.join(GATEWAYS)})"
        ) from None


def gateway_from_settings(settings: Settings) -> PaymentGateway:
    """The gateway OMNIFLOW_PAYMENT_GATEWAY names, built from the settings."""
    return gateway_factory(settings.payment_gateway)(settings)
