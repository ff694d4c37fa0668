"""Shared fixtures: real Postgres, real Temporal, no mocks of our own code.

- `pg_server`: one embedded Postgres per test session; a template database is migrated
  once and every test gets a fresh clone of it (`database_url`), which takes ~50 ms.
- `temporal_env`: a time-skipping Temporal test server per test, with our search attributes.
- `worker`: the real worker (worker.build_worker) on a per-test task queue.
- `api`: the FastAPI app over ASGI (httpx), wired to the test database and Temporal.
- `keys`: the standard catalog loaded, and Authorization headers a role (and a channel key
  for web and marketplace), for the orders API tests.
- `desk`: the API, the keys, the database, Temporal and the settings in one (process tests).
- `stack` (tests/e2e): the whole stack through `omniflow dev` on free ports.

Each checkout keeps its own pytest temp root: pytest keeps only the newest three numbered
temp dirs under one root and deletes older ones, so two checkouts testing at once (git
worktrees side by side) would delete each other's embedded Postgres data while it runs."""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cli.temporal_dev import TemporalDevServer, ensure_search_attributes
from runtime.admin_key import install_key
from runtime.db import make_async_engine, make_sync_engine
from runtime.embedded_pg import EmbeddedPostgres
from runtime.migrate import upgrade
from runtime.ports import free_port
from runtime.settings import Settings
from tests.factories import standard_catalog

TEMPLATE_DB = "omniflow_template"

_CHECKOUT = hashlib.sha1(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:10]
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(Path(tempfile.gettempdir()) / f"omniflow-{_CHECKOUT}"))
Path(os.environ["PYTEST_DEBUG_TEMPROOT"]).mkdir(parents=True, exist_ok=True)

# In CI every property test draws the same examples each run: a green or red build must not
# depend on luck. Locally Hypothesis explores (and remembers failures in .hypothesis/).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
_db_counter = itertools.count()


# -- Postgres ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(
        tmp_path_factory.mktemp("pg") / "data", free_port(), database=TEMPLATE_DB, durable=False
    )
    pg.start()
    upgrade(pg.url)
    # A template must have no other connections while it is cloned.
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {TEMPLATE_DB} WITH IS_TEMPLATE true")
    yield pg
    pg.stop()


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"t_{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield pg_server.admin_url(name)
    with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


# -- Temporal ------------------------------------------------------------------------


def _venv_bin(name: str) -> str:
    return str(Path(sys.prefix) / "bin" / name)


@pytest.fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One test server per test (it starts in ~0.1 s): time skipping is global to a server, and a
    workflow another test left with an outstanding activity would hold every clock still."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_venv_bin("temporal-test-server")
    )
    await ensure_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@pytest.fixture
def dev_server() -> Iterator[TemporalDevServer]:
    """A Temporal dev server, for what the test server does not do as the real one does
    (schedules; which workflow task an update rides in)."""
    server = TemporalDevServer(None, free_port(), None)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address="time-skipping-test-server",
        task_queue=task_queue,
        log_format="console",
        db_pool_size=5,
        workflow_sandbox=True,  # every workflow the tests run is checked by the SDK's sandbox
    )


@pytest.fixture
async def worker(temporal_client: Client, engine: AsyncEngine, settings: Settings) -> AsyncIterator[Worker]:
    from tests.workers import running_worker

    async with running_worker(temporal_client, engine, settings) as w:
        yield w


# -- API -----------------------------------------------------------------------------


@pytest.fixture
def make_key(database_url: str) -> Iterator[Callable[..., str]]:
    """make_key("warehouse") / make_key("channel", channel="web") → a working API key."""
    eng = make_sync_engine(database_url, pool_size=1)

    def _make(role: str, channel: str | None = None) -> str:
        secret = f"omf_test_{role}_{uuid.uuid4().hex}"
        install_key(eng, secret, role=role, channel=channel, name=f"test {role}")
        return secret

    yield _make
    eng.dispose()


@pytest.fixture
def admin_key(make_key: Callable[..., str]) -> str:
    return make_key("admin")


@pytest.fixture
async def api(settings: Settings, temporal_client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the real app (lifespan included), no key set."""
    from api.app import create_app

    app = create_app(settings, configure_logs=False, temporal_client=temporal_client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def admin(api: httpx.AsyncClient, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same app, authenticated as admin."""
    app = api.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {admin_key}"}
    ) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def keys(
    api: httpx.AsyncClient, engine: AsyncEngine, make_key: Callable[..., str]
) -> dict[str, dict[str, str]]:
    """The standard catalog, and an Authorization header a role (channel keys for web and marketplace)."""
    await standard_catalog(engine)
    made = {
        "web": make_key("channel", channel="web"),
        "marketplace": make_key("channel", channel="marketplace"),
        "admin": make_key("admin"),
        "warehouse": make_key("warehouse"),
        "finance": make_key("finance"),
        "readonly": make_key("readonly"),
    }
    return {name: {"Authorization": f"Bearer {key}"} for name, key in made.items()}


@dataclass(frozen=True)
class Desk:
    """What a process test works with: the API and a key per role, the database, Temporal and
    the settings. One fixture, so a test asks for the desk (and a worker) instead of repeating
    the same six parameters."""

    api: httpx.AsyncClient
    keys: dict[str, dict[str, str]]
    engine: AsyncEngine
    client: Client
    env: WorkflowEnvironment
    settings: Settings


@pytest.fixture
def desk(
    api: httpx.AsyncClient,
    keys: dict[str, dict[str, str]],
    engine: AsyncEngine,
    temporal_client: Client,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
) -> Desk:
    return Desk(api, keys, engine, temporal_client, temporal_env, settings)
