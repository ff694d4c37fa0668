"""Reading the production shape for its tests (test_compose.py, test_dockerfile.py):
docker-compose.yml with its interpolation, the Dockerfile's instructions, the settings'
environment names, the Postgres init script."""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from runtime.settings import Settings

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
    "prometheus",
    "grafana",
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
