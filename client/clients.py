"""`OmniflowClient` (httpx.Client) and `AsyncOmniflowClient` (httpx.AsyncClient).

Both are built on `_Api`, which lists every operation of client/operations*.py once; an
`_Operation` descriptor (client/descriptors.py) turns it into a method that returns the
result on the sync client and an awaitable of it on the async one. Building the request, the headers, the retry
decisions and reading the answer are shared (`_Core`); only sending differs."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import tenacity

from client import operations as ops
from client import operations_purchasing as buy
from client import operations_reports as reports
from client import operations_returns as rma
from client.descriptors import _Operation, _Pages
from client.errors import ApiError
from client.models import Page
from client.request import Attempt, Observer, Reply, Request
from client.retry import RetryPolicy

T = TypeVar("T")
_UNSET: Any = object()
# Enough for a load generator on one client; pass your own `http` client for other limits.
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)


class _Core:
    """Configuration and the parts of a call that do not depend on sync or async."""

    is_async = False  # the operations answer awaitables (client.descriptors)

    def __init__(
        self,
        base_url: str | Sequence[str] | None,
        api_key: str | None,
        *,
        timeout: float,
        retry: RetryPolicy | None,
        idempotent_writes: bool,
        observer: Observer | None,
        http_base_url: str | None,
    ) -> None:
        urls = [u for u in ([base_url] if isinstance(base_url, str) else base_url or []) if u]
        if not urls and http_base_url is None:
            raise ValueError("give base_url (or an httpx client with a base_url)")
        # Several replicas of the API: each request starts at the next one, and each retry
        # of it goes to the one after (a replica that died is left at once; the write's
        # Idempotency-Key makes sending it again elsewhere safe).
        self.base_urls = tuple(str(u).rstrip("/") for u in urls or [str(http_base_url)])
        self.base_url = self.base_urls[0]
        self._turns = itertools.count()
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry
        self.idempotent_writes = idempotent_writes
        self.observer = observer
        self._owns_http = True

    def _prepare(self, request: Request[T]) -> Request[T]:
        return request if self.idempotent_writes else request.without_optional_key()

    def _first_replica(self) -> int:
        return next(self._turns) if len(self.base_urls) > 1 else 0

    def _url(self, request: Request[Any], first: int, number: int) -> str:
        return self.base_urls[(first + number - 1) % len(self.base_urls)] + request.path

    def _args(self, request: Request[Any], url: str) -> dict[str, Any]:
        headers = {"Accept": "application/json, application/problem+json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        return {
            "method": request.method,
            "url": url,
            "params": request.query(),
            "json": request.json,
            "headers": headers,
            "timeout": self.timeout + request.extra_timeout,
        }

    def _observe(
        self,
        request: Request[Any],
        number: int,
        started: float,
        response: httpx.Response | None = None,
        error: BaseException | None = None,
    ) -> None:
        if self.observer is not None:
            seconds = time.perf_counter() - started
            self.observer(
                Attempt(request.method, request.route, request.path, number, seconds, response, error)
            )

    @staticmethod
    def _reply(request: Request[T], response: httpx.Response, attempts: int) -> Reply[T]:
        if response.status_code >= 400 and response.status_code not in request.ok_statuses:
            raise ApiError.from_response(response)
        body = response.json() if response.content else None
        return Reply(
            request.parse(body), response.status_code, response.headers, attempts, request.idempotency_key
        )

    def _options(self, **changes: Any) -> Any:
        other = copy.copy(self)
        for name, value in changes.items():
            if value is not _UNSET:
                setattr(other, name, value)
        other._owns_http = False  # the connections stay the first client's
        return other


class _Api:
    """Every operation, once (see client/operations.py, client/operations_purchasing.py and
    client/operations_returns.py for their arguments)."""

    health = _Operation(ops.health)
    ready = _Operation(ops.ready)
    create_api_key = _Operation(ops.create_api_key)
    list_api_keys = _Operation(ops.list_api_keys)
    iter_api_keys = _Pages(ops.list_api_keys)
    revoke_api_key = _Operation(ops.revoke_api_key)
    create_sku = _Operation(ops.create_sku)
    get_sku = _Operation(ops.get_sku)
    list_skus = _Operation(ops.list_skus)
    iter_skus = _Pages(ops.list_skus)
    create_location = _Operation(ops.create_location)
    create_channel = _Operation(ops.create_channel)
    set_policy = _Operation(ops.set_policy)
    create_order = _Operation(ops.create_order)
    get_order = _Operation(ops.get_order)
    list_orders = _Operation(ops.list_orders)
    iter_orders = _Pages(ops.list_orders)
    cancel_order = _Operation(ops.cancel_order)
    fix_ship_to = _Operation(ops.fix_ship_to)
    confirm_payment = _Operation(ops.confirm_payment)
    get_shipment = _Operation(ops.get_shipment)
    pick_tasks = _Operation(ops.pick_tasks)
    pick_shipment = _Operation(ops.pick_shipment)
    pack_shipment = _Operation(ops.pack_shipment)
    ship_shipment = _Operation(ops.ship_shipment)
    list_exceptions = _Operation(ops.list_exceptions)
    iter_exceptions = _Pages(ops.list_exceptions)
    get_exception = _Operation(ops.get_exception)
    resolve_exception = _Operation(ops.resolve_exception)
    adjust_stock = _Operation(ops.adjust_stock)
    move_stock = _Operation(ops.move_stock)
    get_stock = _Operation(ops.get_stock)
    list_movements = _Operation(ops.list_movements)
    iter_movements = _Pages(ops.list_movements)
    get_availability = _Operation(ops.get_availability)
    availability_changes = _Operation(ops.availability_changes)
    create_transfer = _Operation(ops.create_transfer)
    get_transfer = _Operation(ops.get_transfer)
    list_transfers = _Operation(ops.list_transfers)
    iter_transfers = _Pages(ops.list_transfers)
    ship_transfer = _Operation(ops.ship_transfer)
    receive_transfer = _Operation(ops.receive_transfer)
    create_supplier = _Operation(buy.create_supplier)
    put_supplier_item = _Operation(buy.put_supplier_item)  # purchasing: client/operations_purchasing.py
    get_supplier_item = _Operation(buy.get_supplier_item)
    create_purchase_order = _Operation(buy.create_purchase_order)
    get_purchase_order = _Operation(buy.get_purchase_order)
    list_purchase_orders = _Operation(buy.list_purchase_orders)
    iter_purchase_orders = _Pages(buy.list_purchase_orders)
    approve_purchase_order = _Operation(buy.approve_purchase_order)
    reject_purchase_order = _Operation(buy.reject_purchase_order)
    confirm_purchase_order = _Operation(buy.confirm_purchase_order)
    receive_purchase_order = _Operation(buy.receive_purchase_order)
    inspect_purchase_order = _Operation(buy.inspect_purchase_order)
    bill_purchase_order = _Operation(buy.bill_purchase_order)
    cancel_purchase_order = _Operation(buy.cancel_purchase_order)
    replenishment_suggestions = _Operation(buy.replenishment_suggestions)
    set_replenishment_policy = _Operation(buy.set_replenishment_policy)
    list_return_reasons = _Operation(rma.list_return_reasons)  # returns: client/operations_returns.py
    put_return_reason = _Operation(rma.put_return_reason)
    create_return = _Operation(rma.create_return)
    get_return = _Operation(rma.get_return)
    list_returns = _Operation(rma.list_returns)
    iter_returns = _Pages(rma.list_returns)
    receive_return = _Operation(rma.receive_return)
    inspect_return = _Operation(rma.inspect_return)
    cancel_return = _Operation(rma.cancel_return)
    get_store_credit = _Operation(rma.get_store_credit)
    kpis = _Operation(reports.kpis)  # reports: client/operations_reports.py
    list_audit = _Operation(reports.list_audit)
    iter_audit = _Pages(reports.list_audit)


class OmniflowClient(_Api, _Core):
    """The API over a blocking httpx.Client (thread-safe, like httpx.Client).

        with OmniflowClient("http://127.0.0.1:8000", api_key) as api:
            order = api.get_order("order-web-1001")

    `base_url` may list several replicas of the API: requests take turns, and a retry goes
    to the next replica. `retry`: a RetryPolicy, or None (one attempt; the default). `idempotent_writes=False`
    sends an Idempotency-Key only where the API requires one or where you pass one.
    `observer` is called after every attempt (metrics, logs). `transport` or `http` inject
    the HTTP layer (an `http` client you pass stays yours to close)."""

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        idempotent_writes: bool = True,
        observer: Observer | None = None,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            retry=retry,
            idempotent_writes=idempotent_writes,
            observer=observer,
            http_base_url=str(http.base_url) or None if http is not None else None,
        )
        self._http = http or httpx.Client(transport=transport, limits=_LIMITS)
        self._owns_http = http is None

    def send(self, request: Request[T]) -> Reply[T]:
        """Send a request built by client.operations; retried as `retry` says."""
        request, first = self._prepare(request), self._first_replica()
        if self.retry is None:
            return self._once(request, first, 1)
        for attempt in tenacity.Retrying(**self.retry.tenacity(request)):
            with attempt:
                return self._once(request, first, attempt.retry_state.attempt_number)
        raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover

    def _once(self, request: Request[T], first: int, number: int) -> Reply[T]:
        started = time.perf_counter()
        try:
            response = self._http.request(**self._args(request, self._url(request, first, number)))
        except httpx.TransportError as exc:
            self._observe(request, number, started, error=exc)
            raise
        self._observe(request, number, started, response=response)
        return self._reply(request, response, number)

    def paginate(self, request: Request[Page[T]]) -> Iterator[T]:
        """Every item of every page, following `next_cursor`."""
        while True:
            page = self.send(request).value
            yield from page.items
            if not page.next_cursor:
                return
            request = request.with_params(cursor=page.next_cursor)

    def with_options(
        self,
        *,
        api_key: str | None = _UNSET,
        retry: RetryPolicy | None = _UNSET,
        idempotent_writes: bool = _UNSET,
        observer: Observer | None = _UNSET,
    ) -> OmniflowClient:
        """The same client with other options (another key, say), on the same connections;
        closing it leaves them open."""
        other: OmniflowClient = self._options(
            api_key=api_key, retry=retry, idempotent_writes=idempotent_writes, observer=observer
        )
        return other

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> OmniflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOmniflowClient(_Api, _Core):
    """The API over httpx.AsyncClient; every operation is awaited (the `iter_…` ones are
    async iterators). Same arguments as OmniflowClient; `transport` may be an
    `httpx.ASGITransport(app)` to talk to the app in-process."""

    is_async = True

    def __init__(
        self,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        idempotent_writes: bool = True,
        observer: Observer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            retry=retry,
            idempotent_writes=idempotent_writes,
            observer=observer,
            http_base_url=str(http.base_url) or None if http is not None else None,
        )
        self._http = http or httpx.AsyncClient(transport=transport, limits=_LIMITS)
        self._owns_http = http is None

    async def send(self, request: Request[T]) -> Reply[T]:
        """Send a request built by client.operations; retried as `retry` says."""
        request, first = self._prepare(request), self._first_replica()
        if self.retry is None:
            return await self._once(request, first, 1)
        async for attempt in tenacity.AsyncRetrying(**self.retry.tenacity(request)):
            with attempt:
                return await self._once(request, first, attempt.retry_state.attempt_number)
        raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover

    async def _once(self, request: Request[T], first: int, number: int) -> Reply[T]:
        started = time.perf_counter()
        try:
            response = await self._http.request(**self._args(request, self._url(request, first, number)))
        except httpx.TransportError as exc:
            self._observe(request, number, started, error=exc)
            raise
        self._observe(request, number, started, response=response)
        return self._reply(request, response, number)

    async def paginate(self, request: Request[Page[T]]) -> AsyncIterator[T]:
        """Every item of every page, following `next_cursor`."""
        while True:
            page = (await self.send(request)).value
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            request = request.with_params(cursor=page.next_cursor)

    def with_options(
        self,
        *,
        api_key: str | None = _UNSET,
        retry: RetryPolicy | None = _UNSET,
        idempotent_writes: bool = _UNSET,
        observer: Observer | None = _UNSET,
    ) -> AsyncOmniflowClient:
        """The same client with other options (another key, say), on the same connections;
        closing it leaves them open."""
        other: AsyncOmniflowClient = self._options(
            api_key=api_key, retry=retry, idempotent_writes=idempotent_writes, observer=observer
        )
        return other

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncOmniflowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
