"""Static checks of the production shape (docker-compose.yml, deploy/) against the code:
nothing here needs Docker. A compose file drifts silently from the settings and search
attributes it feeds; these tests make that drift a failure. The image (Dockerfile) is checked
in test_dockerfile.py; reading the files is tests/compose_files.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from runtime.settings import Settings
from tests.compose_files import (
    APP_SERVICES,
    DOCKERFILE,
    EXPECTED_SERVICES,
    ROOT,
    TEMPORAL_PORT,
    TEMPORAL_SA_TYPES,
    _bind_mounts,
    _compose,
    _depends_on,
    _dockerfile_args,
    _env,
    _image_tag,
    _init_sql,
    _ports,
    _resolved_env,
    _script_of,
    _service,
    _services,
    _settings_env_names,
)
from workflows.search_attributes import CLI_TYPES

# -- services and images -------------------------------------------------------------------


def test_expected_services_exist() -> None:
    missing = EXPECTED_SERVICES - set(_services())
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


def test_no_obsolete_top_level_version_key() -> None:
    assert "version" not in _compose(), "the compose spec has no top-level `version:`; remove it"


def test_every_image_is_pinned() -> None:
    for name, service in _services().items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        tag = _image_tag(str(image))
        assert tag is not None, f"{name}: image {image!r} has no tag; pin an exact version"
        assert tag != "latest" and re.search(r"\d", tag), (
            f"{name}: image {image!r} is not pinned to a version"
        )


def test_temporal_server_and_admin_tools_share_a_minor_version() -> None:
    def minor(service: str) -> str:
        tag = _image_tag(str(_service(service).get("image", ""))) or ""
        m = re.match(r"(\d+\.\d+)\.", tag)
        assert m, f"{service}: image tag {tag!r} does not start with a version"
        return m[1]

    server = minor("temporal")
    for tools in ("temporal-admin-tools", "temporal-create-namespace"):
        assert minor(tools) == server, f"{tools} is on Temporal {minor(tools)}, the server on {server}"


def test_app_services_build_from_the_dockerfile() -> None:
    for name in APP_SERVICES:
        build = _service(name).get("build")
        if isinstance(build, str):
            build = {"context": build}
        assert isinstance(build, dict), f"{name} is not built from this repository"
        context = (ROOT / str(build.get("context", "."))).resolve()
        dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
        assert context == ROOT, f"{name} builds from {context}, not the repository root"
        assert dockerfile == DOCKERFILE, f"{name} builds from {dockerfile}, not {DOCKERFILE}"


def test_app_service_commands() -> None:
    expected = {
        "migrate": ["omniflow", "migrate"],
        "api": ["python", "-m", "api"],
        "worker": ["python", "-m", "worker"],
    }
    for name, argv in expected.items():
        command = _service(name).get("command")
        # The api may rely on the image's CMD.
        if name == "api" and command is None:
            continue
        assert command == argv, f"{name} runs {command!r}, expected {argv!r}"


def test_bind_mounts_exist() -> None:
    for name, service in _services().items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source} at {target}, but it does not exist"
            assert ROOT / "deploy" in source.parents, f"{name} mounts {source}, outside deploy/"


# -- configuration of the app containers ----------------------------------------------------


def test_app_env_vars_are_settings_fields() -> None:
    allowed = _settings_env_names()
    for name in APP_SERVICES:
        unknown = set(_env(_service(name))) - allowed
        assert not unknown, (
            f"{name} sets {sorted(unknown)}, which configure nothing: the app reads only "
            f"DATABASE_URL, TEMPORAL_ADDRESS and OMNIFLOW_<FIELD> of runtime.settings.Settings"
        )


def test_app_env_makes_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in APP_SERVICES:
        env = _resolved_env(_service(name))
        for var in ("DATABASE_URL", "TEMPORAL_ADDRESS"):
            assert env.get(var), f"{name} does not set {var}: it would start embedded servers"
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        settings = Settings()  # raises on a value of the wrong type (e.g. OMNIFLOW_LOG_FORMAT)
        assert settings.database_url == env["DATABASE_URL"]
        assert settings.temporal_address == env["TEMPORAL_ADDRESS"]


def test_admin_key_must_be_supplied() -> None:
    for name in ("api", "migrate"):
        raw = _env(_service(name)).get("OMNIFLOW_ADMIN_KEY", "")
        assert re.fullmatch(r"\$\{OMNIFLOW_ADMIN_KEY:\?[^}]+\}", raw), (
            f"{name}: OMNIFLOW_ADMIN_KEY should be `${{OMNIFLOW_ADMIN_KEY:?...}}` "
            f"(required, no default), got {raw!r}"
        )


def test_temporal_address_points_at_the_temporal_service() -> None:
    temporal_ports = [port for _, port in _ports(_service("temporal"))]
    assert TEMPORAL_PORT in temporal_ports, f"temporal does not expose {TEMPORAL_PORT}: {temporal_ports}"
    for name, service in _services().items():
        address = _resolved_env(service).get("TEMPORAL_ADDRESS")
        if address is None:
            continue
        host, _, port = address.rpartition(":")
        assert host == "temporal", f"{name}: TEMPORAL_ADDRESS {address!r} is not the temporal service"
        assert port == str(TEMPORAL_PORT), f"{name}: TEMPORAL_ADDRESS {address!r} is not port {TEMPORAL_PORT}"
    for name in APP_SERVICES:
        assert "TEMPORAL_ADDRESS" in _env(_service(name)), f"{name} does not set TEMPORAL_ADDRESS"


def test_database_url_points_at_the_postgres_service() -> None:
    assert str(_service("postgres").get("image", "")).startswith("postgres:"), (
        "service postgres does not run the postgres image"
    )
    init_sql = _init_sql()
    for name in APP_SERVICES:
        url = urlsplit(_resolved_env(_service(name))["DATABASE_URL"])
        assert url.scheme in ("postgresql", "postgres"), f"{name}: DATABASE_URL is not a Postgres URL"
        assert url.hostname == "postgres", f"{name}: DATABASE_URL host {url.hostname!r} is not postgres"
        assert url.port in (None, 5432), f"{name}: DATABASE_URL port {url.port} is not 5432"
        database, user = url.path.lstrip("/"), url.username
        assert re.search(rf"CREATE DATABASE {database} OWNER {user}\b", init_sql), (
            f"{name}: the postgres init script does not create database {database!r} owned by {user!r}"
        )


def test_temporal_persistence_uses_the_databases_the_init_script_creates() -> None:
    env = _resolved_env(_service("temporal"))
    init_sql = _init_sql()
    assert env.get("DB") == "postgres12", f"temporal DB={env.get('DB')!r}, expected postgres12"
    assert env.get("POSTGRES_SEEDS") == "postgres", "temporal's POSTGRES_SEEDS is not the postgres service"
    user = env.get("POSTGRES_USER")
    for var, default in (("DBNAME", "temporal"), ("VISIBILITY_DBNAME", "temporal_visibility")):
        database = env.get(var, default)
        assert re.search(rf"CREATE DATABASE {database} OWNER {user}\b", init_sql), (
            f"temporal's {var}={database!r} (user {user!r}) is not created by the postgres init script"
        )
    tools = _resolved_env(_service("temporal-admin-tools"))
    assert tools.get("SQL_USER") == user and tools.get("SQL_HOST") == "postgres", (
        "temporal-admin-tools does not connect as the temporal server does"
    )
    assert tools.get("SQL_PASSWORD") == env.get("POSTGRES_PWD"), (
        "temporal-admin-tools and temporal use different passwords"
    )


def test_temporal_schema_setup_covers_both_databases() -> None:
    script = _script_of("temporal-admin-tools")
    assert "temporal-sql-tool" in script, "the schema setup does not run temporal-sql-tool"
    for database, schema in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        assert re.search(rf"--db {database} setup-schema", script), f"no setup-schema for {database}"
        assert re.search(
            rf"--db {database} update-schema -d \S*/schema/postgresql/v12/{schema}/versioned", script
        ) or re.search(rf"--db {database} update-schema -d \"\$SCHEMA_DIR/{schema}/versioned\"", script), (
            f"no update-schema of {database} from the postgresql/v12/{schema}/versioned schema"
        )
    dynamic_config = _resolved_env(_service("temporal")).get("DYNAMIC_CONFIG_FILE_PATH", "")
    mounts = _bind_mounts(_service("temporal"))
    host_files = [
        source / Path(dynamic_config).relative_to(target)
        for target, source in mounts.items()
        if dynamic_config.startswith(target.rstrip("/") + "/")
    ]
    assert host_files and host_files[0].is_file(), (
        f"DYNAMIC_CONFIG_FILE_PATH {dynamic_config!r} is not a file mounted from deploy/"
    )
    assert isinstance(yaml.safe_load(host_files[0].read_text()), dict), "the dynamic config is not a mapping"


def test_api_publishes_the_port_it_listens_on() -> None:
    api_port = int(_env(_service("api"))["OMNIFLOW_API_PORT"])
    container_ports = [port for _, port in _ports(_service("api"))]
    assert container_ports == [api_port], (
        f"api listens on OMNIFLOW_API_PORT={api_port} but publishes container ports {container_ports}"
    )
    exposed = [int(p.split("/")[0]) for args in _dockerfile_args("EXPOSE") for p in args.split()]
    assert api_port in exposed, f"the Dockerfile exposes {exposed}, not the API port {api_port}"


def test_worker_runs_two_replicas() -> None:
    replicas = (_service("worker").get("deploy") or {}).get("replicas")
    assert replicas == 2, f"worker deploy.replicas is {replicas!r}, expected 2"
    assert not _service("worker").get("ports"), "worker publishes ports: replicas would collide"


def test_namespace_is_the_one_the_app_uses() -> None:
    default = Settings.model_fields["temporal_namespace"].default
    app_namespaces = {
        _resolved_env(_service(name)).get("OMNIFLOW_TEMPORAL_NAMESPACE", default) for name in APP_SERVICES
    }
    created = _resolved_env(_service("temporal-create-namespace")).get("NAMESPACE")
    assert app_namespaces == {created}, (
        f"the app uses namespace(s) {app_namespaces}, setup creates {created!r}"
    )
    ui = _resolved_env(_service("temporal-ui")).get("TEMPORAL_DEFAULT_NAMESPACE", "default")
    assert ui == created, f"the UI opens namespace {ui!r}, not {created!r}"


def test_search_attribute_setup_matches_the_code() -> None:
    raw = _resolved_env(_service("temporal-create-namespace")).get("SEARCH_ATTRIBUTES", "")
    pairs = [spec.split("=", 1) for spec in raw.split()]
    assert all(len(p) == 2 for p in pairs), f"SEARCH_ATTRIBUTES is not 'Name=Type ...': {raw!r}"
    declared = {name: kind for name, kind in pairs}
    assert len(declared) == len(pairs), f"SEARCH_ATTRIBUTES names an attribute twice: {raw!r}"
    assert declared == CLI_TYPES, (
        f"compose registers {declared}, workflows/search_attributes.py CLI_TYPES is {CLI_TYPES}"
    )
    assert set(declared.values()) <= TEMPORAL_SA_TYPES, f"unknown search attribute types in {declared}"
    script = _script_of("temporal-create-namespace")
    assert "temporal operator search-attribute create" in script, "setup never creates search attributes"
    assert "$SEARCH_ATTRIBUTES" in script, "setup ignores SEARCH_ATTRIBUTES"
    assert "temporal operator namespace create" in script, "setup never creates the namespace"


# -- start-up order ------------------------------------------------------------------------


def test_temporal_waits_for_its_schema() -> None:
    condition = _depends_on(_service("temporal")).get("temporal-admin-tools")
    assert condition == "service_completed_successfully", (
        f"temporal depends on temporal-admin-tools with {condition!r}, "
        "expected service_completed_successfully (the schema must exist first)"
    )
    tools = _depends_on(_service("temporal-admin-tools")).get("postgres")
    assert tools == "service_healthy", f"temporal-admin-tools waits for postgres with {tools!r}"


def test_api_waits_for_migrations_and_temporal() -> None:
    deps = _depends_on(_service("api"))
    assert deps.get("migrate") == "service_completed_successfully", (
        f"api depends on migrate with {deps.get('migrate')!r}, expected service_completed_successfully"
    )
    assert "temporal" in deps, "api does not depend on temporal"
    assert _depends_on(_service("migrate")).get("postgres") == "service_healthy", (
        "migrate does not wait for a healthy postgres"
    )


def test_workers_wait_for_migrations_and_the_namespace() -> None:
    deps = _depends_on(_service("worker"))
    for one_shot in ("migrate", "temporal-create-namespace"):
        assert deps.get(one_shot) == "service_completed_successfully", (
            f"worker depends on {one_shot} with {deps.get(one_shot)!r}, expected service_completed_successfully"
        )


def test_depends_on_references_only_defined_services() -> None:
    services = _services()
    for name, service in services.items():
        unknown = set(_depends_on(service)) - set(services)
        assert not unknown, f"{name} depends on undefined services {sorted(unknown)}"


def test_depends_on_has_no_cycles() -> None:
    graph = {name: set(_depends_on(service)) for name, service in _services().items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError(f"depends_on cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_health_checks() -> None:
    assert "pg_isready" in json.dumps(_service("postgres").get("healthcheck")), (
        "postgres has no pg_isready check"
    )
    assert "/healthz" in json.dumps(_service("api").get("healthcheck")), "api has no /healthz health check"
    for name in ("migrate", "worker"):
        # They inherit the image's API health check, which they cannot pass.
        healthcheck = _service(name).get("healthcheck") or {}
        assert healthcheck.get("disable") is True, f"{name} should disable the image's API health check"
