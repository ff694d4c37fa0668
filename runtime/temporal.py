"""The Temporal client, built the same way in the API, the worker, the CLI and tests."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime.errors import StartupError
from workflows import search_attributes as sa

_INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
}


async def connect(address: str, namespace: str = "default", *, lazy: bool = False) -> Client:
    return await Client.connect(address, namespace=namespace, lazy=lazy)


async def connect_or_fail(address: str, namespace: str, setting: str, within: float = 30.0) -> Client:
    """Connect, retrying for `within` seconds; fail with one line naming the setting."""
    deadline = asyncio.get_running_loop().time() + within
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            return await connect(address, namespace)
        except Exception as exc:  # the SDK raises RuntimeError with a transport message
            last = exc
            await asyncio.sleep(0.5)
    raise StartupError(setting, f"cannot reach Temporal at {address}: {last}")


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes on a server that lacks them (idempotent).

    The time-skipping test server implements AddSearchAttributes but not the listing."""
    wanted = {name: _INDEXED[kind] for name, kind in sa.CLI_TYPES.items()}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {name: t for name, t in wanted.items() if name not in existing.custom_attributes}
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        missing = wanted
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise
