"""Static checks of the image (Dockerfile, .dockerignore) against the code: nothing here needs
Docker. Reading the files is tests/compose_files.py."""

from __future__ import annotations

import re
import shlex
import tomllib

from tests.compose_files import (
    DOCKERIGNORE,
    ROOT,
    _dockerfile_args,
    _exec_form,
    _image_tag,
    _settings_env_names,
)

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
