"""An update the workflow did not answer in time (503) is sent again by the API until it is
answered. Here for real: a dev server with its database on disk, the worker stopped so the
pick is not answered, then the engine killed and started again, which loses the admitted
update (it lived in the engine's memory); once a worker is back, the API's own resending
is what picks the shipment. The caller never asked again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.app import create_app
from api.metrics import UPDATES_FINISHED
from cli.temporal_dev import TemporalDevServer, ensure_search_attributes
from runtime.ports import free_port
from runtime.settings import Settings
from runtime.temporal import connect_or_fail
from tests.factories import receive, standard_catalog
from tests.orders import until
from tests.orders_api import create, order_body
from tests.workers import running_worker


@pytest.fixture
def engine_on_disk(tmp_path: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(tmp_path / "temporal.db", free_port(), None)
    server.start()
    yield server
    server.stop()


def _restart(server: TemporalDevServer) -> None:
    """A crash: SIGKILL, then the same database file and port again."""
    assert server._proc is not None
    server._proc.kill()
    server._proc.wait()
    server.start()


async def _client(server: TemporalDevServer) -> Client:
    client = await connect_or_fail(server.address, "default", "TEMPORAL_ADDRESS")
    await ensure_search_attributes(client, "default")
    return client


@pytest.fixture
async def quick_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rpc_timeout_seconds": 1.0, "update_finish_seconds": 90.0})


@pytest.fixture
async def http(
    quick_settings: Settings, engine_on_disk: TemporalDevServer, engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    await standard_catalog(engine)
    await receive(engine, "TEE", "DC-EAST", 10)
    client = await _client(engine_on_disk)
    app = create_app(quick_settings, configure_logs=False, temporal_client=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            yield api, client


async def test_a_pick_lost_with_the_engine_is_sent_again_until_answered(
    http: tuple[httpx.AsyncClient, Client],
    engine_on_disk: TemporalDevServer,
    engine: AsyncEngine,
    quick_settings: Settings,
    make_key: Callable[..., str],
) -> None:
    api, client = http
    web = {"Authorization": f"Bearer {make_key('channel', channel='web')}"}
    wh = {"Authorization": f"Bearer {make_key('warehouse')}"}
    answered = UPDATES_FINISHED.labels("Order", "pick", "answered")
    before = answered._value.get()
    async with running_worker(client, engine, quick_settings):
        assert (await create(api, web, order_body("FIN-1"))).status_code == 202
        snap = await until(client.get_workflow_handle("order-web-FIN-1"), lambda o: bool(o.shipments), 20)
    sid = snap.shipments[0].id

    # No worker: the pick is admitted and not answered in the RPC timeout.
    r = await api.post(f"/v1/shipments/{sid}/pick", json={"lines": [{"sku": "TEE", "qty": 2}]}, headers=wh)
    assert r.status_code == 503, r.text
    await asyncio.to_thread(_restart, engine_on_disk)  # the admitted pick is gone with it

    async with running_worker(client, engine, quick_settings):
        handle = client.get_workflow_handle("order-web-FIN-1")
        snap = await until(handle, lambda o: o.shipments[0].status == "picked", 60)
    assert snap.shipments[0].lines[0].picked == 2
    assert answered._value.get() == before + 1
    assert (await api.get(f"/v1/shipments/{sid}", headers=wh)).json()["status"] == "picked"


class _Engine:
    """A Temporal client whose updates are not answered until `answer` is set: what the
    finisher sends, counted by update id."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.sent: list[str] = []

    def get_workflow_handle(self, workflow_id: str) -> _Engine:
        return self

    async def execute_update(self, name: str, arg: object, *, id: str, **_: object) -> None:
        self.sent.append(id)
        await self.answer.wait()


async def test_an_update_in_hand_is_one_task_and_a_process_keeps_at_most_so_many() -> None:
    from api.update_finisher import UnansweredUpdate, UpdateFinisher

    engine = _Engine()
    finisher = UpdateFinisher(engine, window_seconds=30, rpc_seconds=1, most=2)  # type: ignore[arg-type]
    not_kept = UPDATES_FINISHED.labels("Order", "pick", "not_kept")
    before = not_kept._value.get()
    for update_id in ("u1", "u1", "u2", "u3"):  # u1's caller met a 503 twice; u3 is one too many
        finisher.finish(UnansweredUpdate("Order", "order-1", "pick", None, update_id))
    await asyncio.sleep(0.05)
    assert sorted(engine.sent) == ["u1", "u2"]
    assert not_kept._value.get() == before + 1
    engine.answer.set()
    for _ in range(100):
        if not finisher._finishing:
            break
        await asyncio.sleep(0.01)
    assert not finisher._finishing  # answered: nothing left in hand
    await finisher.stop()
