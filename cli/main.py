"""The `omniflow` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from runtime.errors import StartupError
from runtime.settings import Settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="omniflow: orders, inventory and finance on Temporal."
)
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(keys_app, name="keys")
inventory_app = typer.Typer(no_args_is_help=True, help="Inventory operations.")
app.add_typer(inventory_app, name="inventory")
ledger_app = typer.Typer(no_args_is_help=True, help="Ledger operations.")
app.add_typer(ledger_app, name="ledger")


def _settings(**overrides: object) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]


@app.command()
def dev(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (default .omniflow, OMNIFLOW_DATA_DIR).")
    ] = None,
    api_port: Annotated[int | None, typer.Option(help="API port (OMNIFLOW_API_PORT).")] = None,
    temporal_port: Annotated[
        int | None, typer.Option(help="Temporal gRPC port (OMNIFLOW_TEMPORAL_PORT).")
    ] = None,
    ui_port: Annotated[int | None, typer.Option(help="Temporal Web UI port (OMNIFLOW_UI_PORT).")] = None,
    pg_port: Annotated[int | None, typer.Option(help="Embedded Postgres port (OMNIFLOW_PG_PORT).")] = None,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Load demo data once.")] = True,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Once ready, run `omniflow simulate` against it (`make demo`).")
    ] = False,
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Workers and APIs to run, each (the APIs on consecutive ports from --api-port).",
        ),
    ] = 1,
) -> None:
    """Run the whole stack: embedded Postgres + Temporal dev server + worker(s) + API(s)."""
    from cli.dev import run_dev

    settings = _settings(
        data_dir=data_dir, api_port=api_port, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port
    )
    raise typer.Exit(run_dev(settings, demo=demo, simulate=simulate, replicas=replicas))


@app.command()
def simulate(
    api_url: Annotated[
        str | None, typer.Option(help="The API (default: OMNIFLOW_API_HOST and OMNIFLOW_API_PORT).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="An admin key (default: OMNIFLOW_ADMIN_KEY, else the data directory's admin_key)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="The same seed plays the same plan.")] = 1,
    duration: Annotated[float, typer.Option(min=1, help="Seconds the run lasts at most.")] = 300.0,
    orders: Annotated[int, typer.Option(min=1, help="Orders placed at most.")] = 500,
    rate: Annotated[float, typer.Option(min=0.01, help="Orders a second, on average.")] = 2.0,
    tag: Annotated[
        str, typer.Option(help="Put in every business id of the run (default sim<seed>-<time>).")
    ] = "",
) -> None:
    """Drive realistic traffic through the API: channels with their own mix and promotions, a
    flash sale, cancels, short picks, supplier delays, returns, and an approver desk that
    answers some exceptions and lets others escalate. Ctrl-C stops it cleanly."""
    import asyncio

    from rich.console import Console

    from cli.simulate import Options
    from cli.simulate import simulate as run_simulation

    settings = Settings()
    key = api_key or (settings.admin_key.get_secret_value() if settings.admin_key else None)
    key_file = settings.data_dir / "admin_key"
    if key is None and key_file.exists():
        key = key_file.read_text().strip()
    if not key:
        _fail(
            StartupError(
                "--api-key", f"is not given, OMNIFLOW_ADMIN_KEY is not set and there is no {key_file}"
            )
        )
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    opts = Options(url, key or "", seed=seed, duration=duration, orders=orders, rate=rate, tag=tag)
    import httpx

    from client import ApiError

    try:
        asyncio.run(run_simulation(opts, Console()))
    except (ApiError, httpx.TransportError) as exc:
        _fail(StartupError("omniflow simulate", f"the API at {url} answered: {exc}"))
    except asyncio.CancelledError:
        raise typer.Exit(130) from None


@app.command()
def migrate() -> None:
    """Apply database migrations to DATABASE_URL."""
    from runtime.migrate import upgrade

    settings = Settings()
    if not settings.database_url:
        _fail(StartupError("DATABASE_URL", "is not set"))
    upgrade(settings.database_url or "")
    typer.echo("migrations applied")
    if settings.admin_key:  # deployments configure the bootstrap admin key the same way `omniflow dev` does
        from runtime.admin_key import install_key
        from runtime.db import make_sync_engine

        engine = make_sync_engine(settings.database_url or "", pool_size=1)
        install_key(engine, settings.admin_key.get_secret_value(), role="admin", name="bootstrap admin")
        engine.dispose()
        typer.echo("admin key from OMNIFLOW_ADMIN_KEY installed")


@app.command()
def worker() -> None:
    """Run a worker against DATABASE_URL and TEMPORAL_ADDRESS."""
    import worker as worker_module

    worker_module.main()


@app.command()
def api() -> None:
    """Serve the API against DATABASE_URL and TEMPORAL_ADDRESS."""
    from api.__main__ import main

    main()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, channel, warehouse, approver, finance or readonly")],
    channel: Annotated[str | None, typer.Option(help="The channel a channel key is bound to.")] = None,
    name: Annotated[str, typer.Option(help="A name people recognise.")] = "",
) -> None:
    """Create an API key in DATABASE_URL (unset: the embedded stack's database under
    OMNIFLOW_DATA_DIR, as `omniflow dev` runs it) and print it (once)."""
    from models.auth import ROLES
    from runtime.admin_key import KEY_PREFIX, install_key
    from runtime.db import make_sync_engine

    settings = Settings()
    if role not in ROLES:
        _fail(StartupError("--role", f"must be one of {', '.join(ROLES)}"))
    if (role == "channel") != bool(channel):
        _fail(StartupError("--channel", "is required for channel keys and only for them"))
    database_url = _database_url(settings)
    import secrets

    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    from sqlalchemy.exc import OperationalError

    engine = make_sync_engine(database_url, pool_size=1)
    try:
        key_id = install_key(engine, secret, role=role, channel=channel, name=name or f"{role} key")
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        _fail(
            StartupError(
                "DATABASE_URL", f"cannot reach {database_url} (is `omniflow dev` running?): {reason}"
            )
        )
    finally:
        engine.dispose()
    typer.echo(f"id={key_id} role={role}{f' channel={channel}' if channel else ''}")
    typer.echo(secret)


def _database_url(settings: Settings) -> str:
    """DATABASE_URL, or when it is unset the embedded Postgres `omniflow dev` keeps under the
    data directory (OMNIFLOW_DATA_DIR, on OMNIFLOW_PG_PORT). Neither: exit 2 saying so."""
    if settings.database_url:
        return settings.database_url
    from runtime.embedded_pg import EmbeddedPostgres

    if (settings.pg_data_dir / "PG_VERSION").exists():
        return EmbeddedPostgres(settings.pg_data_dir, settings.pg_port).url
    _fail(
        StartupError(
            "DATABASE_URL",
            f"is not set and there is no embedded database under {settings.data_dir} (start it with"
            " `omniflow dev` / `make run`, set OMNIFLOW_DATA_DIR to its data directory, or set DATABASE_URL"
            " to the omniflow database)",
        )
    )
    return ""  # _fail exits


def _run_check(name: str, check: Any) -> None:
    import asyncio

    from runtime.db import make_async_engine

    database_url = _database_url(Settings())

    async def run() -> list[str]:
        engine = make_async_engine(database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return list(await check(conn))
        finally:
            await engine.dispose()

    findings = asyncio.run(run())
    for finding in findings:
        typer.echo(finding)
    typer.echo(f"{name} check: {len(findings)} findings")
    raise typer.Exit(1 if findings else 0)


@inventory_app.command("check")
def inventory_check() -> None:
    """Verify every balance equals the sum of its moves (and reservations agree); exit 1 on drift."""
    from models.stock import check

    _run_check("inventory", check)


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify every entry balances, the trial balance balances, inventory accounts equal the
    valuation, and no payment refunded more than it captured; exit 1 on any finding."""
    from models.finance import check

    _run_check("ledger", check)


def _fail(exc: StartupError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def main() -> None:
    try:
        app()
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
