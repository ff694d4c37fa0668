"""Static checks of the production shape (docker-compose.yml, Dockerfile, deploy/) against
the code: nothing here needs Docker. A compose file drifts silently from the settings and
search attributes it feeds; these tests make that drift a failure."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from runtime.settings import Settings
from workflows.search_attributes import CLI_TYPES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("migrate", "api", "worker")
EXPECTED_SERVICES = {
    "postgres",
    "temporal-admin-tools",
    "temporal",
    "temporal-create-namespace",
    "temporal-ui",
    *APP_SERVICES,
}
TEMPORAL_PORT = 7233
# What `temporal operator search-attribute create --type` accepts.
TEMPORAL_SA_TYPES = {"Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"}


# -- reading the files ---------------------------------------------------------------------


@cache
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services"
    return services


def _service(name: str) -> dict[str, Any]:
    services = _services()
    assert name in services, f"service {name!r} is missing from docker-compose.yml"
    return services[name]


_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def _interpolate(value: str) -> str:
    """Resolve compose interpolation as `up` would with no variable set: `${X:-d}` -> d,
    required `${X:?msg}` -> a placeholder, `$$` -> `$`."""

    def one(m: re.Match[str]) -> str:
        if m["bare"]:
            return f"<{m['bare']}>"
        if m["op"] and m["op"].endswith("-"):
            return m["arg"]
        return f"<{m['name']}>"

    parts = value.split("$$")
    return "$".join(_INTERPOLATION.sub(one, part) for part in parts)


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as name -> raw (uninterpolated) value, from either form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _resolved_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: _interpolate(v) for k, v in _env(service).items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """name -> condition (compose's default for the short form is service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _ports(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(published, container port) for each entry of `ports`, short or long syntax."""
    out: list[tuple[str | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((None if published is None else str(published), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        out.append((parts[-2] if len(parts) > 1 else None, int(parts[-1])))
    return out


def _image_tag(image: str) -> str | None:
    """The tag of an image reference (None if it has none); a digest counts as a tag."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path, for the relative bind mounts of a service."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":")[0]
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def _script_of(name: str) -> str:
    """The text of the deploy/ script a one-shot service runs through its bind mount."""
    service = _service(name)
    command = service.get("command")
    argv = command if isinstance(command, list) else shlex.split(str(command or ""))
    mounts = _bind_mounts(service)
    for arg in argv:
        for target, source in mounts.items():
            if arg == target or arg.startswith(target.rstrip("/") + "/"):
                path = source / Path(arg).relative_to(target) if arg != target else source
                assert path.is_file(), f"{name} runs {arg}, but {path} does not exist"
                return path.read_text()
    raise AssertionError(f"{name} runs no script from a bind mount (command {argv}, mounts {mounts})")


@cache
def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _dockerfile_args(instruction: str) -> list[str]:
    return [args for word, args in _dockerfile() if word == instruction]


def _exec_form(args: str) -> list[str]:
    parsed = json.loads(args) if args.startswith("[") else None
    assert isinstance(parsed, list), f"expected the JSON exec form, got {args!r}"
    return [str(a) for a in parsed]


def _settings_env_names() -> set[str]:
    """Every environment variable name that sets a field of Settings."""
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"OMNIFLOW_{field.upper()}")
    return names


def _init_sql() -> str:
    mounts = _bind_mounts(_service("postgres"))
    initdb = mounts.get("/docker-entrypoint-initdb.d")
    assert initdb is not None and initdb.is_dir(), "postgres mounts no init directory from deploy/"
    return "\n".join(p.read_text() for p in sorted(initdb.iterdir()) if p.is_file())


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


# -- the image -----------------------------------------------------------------------------


def test_dockerfile_base_image_is_pinned() -> None:
    stages: set[str] = set()
    froms = _dockerfile_args("FROM")
    assert froms, "the Dockerfile has no FROM"
    for args in froms:
        words = [w for w in args.split() if not w.startswith("--")]
        image = words[0]
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2].lower())
        if image.lower() in stages:
            continue
        tag = _image_tag(image) or ""
        assert image.startswith("python:3.11"), f"base image {image!r} is not python:3.11"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"base image {image!r} is not pinned to a patch release"
        assert "slim" in tag, f"base image {image!r} is not a slim image"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = _dockerfile_args("USER")
    assert users, "the Dockerfile has no USER: the app would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"the final USER is {users[-1]!r}"


def test_dockerfile_default_command_serves_the_api() -> None:
    cmds = _dockerfile_args("CMD")
    assert cmds, "the Dockerfile has no CMD"
    assert _exec_form(cmds[-1]) == ["python", "-m", "api"], f"CMD is {cmds[-1]!r}"
    healthchecks = _dockerfile_args("HEALTHCHECK")
    assert healthchecks and "/healthz" in healthchecks[-1], "the image has no /healthz HEALTHCHECK"


def test_dockerfile_env_is_settings_fields() -> None:
    env: dict[str, str] = {}
    for args in _dockerfile_args("ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            if sep:
                env[key] = value
    omniflow = {k for k in env if k.startswith("OMNIFLOW_")}
    assert omniflow <= _settings_env_names(), (
        f"the image sets unknown settings {omniflow - _settings_env_names()}"
    )
    assert env.get("OMNIFLOW_API_HOST") == "0.0.0.0", "the API in the image must listen on 0.0.0.0"
    assert env.get("OMNIFLOW_LOG_FORMAT") == "json", "the image should log JSON"


def test_dockerfile_installs_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools_cfg = pyproject["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in setuptools_cfg["packages"]["find"]["include"]}
    modules = {f"{m}.py" for m in setuptools_cfg.get("py-modules", [])}
    copied: set[str] = set()
    for args in _dockerfile_args("COPY"):
        if any(w.startswith("--from") for w in args.split()):
            continue  # from another stage, not the build context
        words = [w for w in args.split() if not w.startswith("--")]
        copied.update(w.rstrip("/").removeprefix("./") for w in words[:-1])
    missing = (packages | modules | {"pyproject.toml"}) - copied
    assert not missing, f"the Dockerfile does not copy {sorted(missing)}"
    assert any("pip install ." in args for args in _dockerfile_args("RUN")), (
        "the image never runs pip install ."
    )
    assert not any("[dev" in args for args in _dockerfile_args("RUN")), "the image installs dev extras"
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    for name in sorted(packages | modules | {"pyproject.toml"}):
        assert f"!{name}" in ignore or f"!{name}/" in ignore, (
            f".dockerignore leaves {name} out of the context"
        )
