from __future__ import annotations

from pathlib import Path

import pytest

from runtime.settings import Settings


def test_conventional_variables_configure_external_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/omniflow")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("OMNIFLOW_API_PORT", "9000")
    s = Settings()
    assert s.database_url == "postgresql://u:p@db:5432/omniflow"
    assert s.temporal_address == "temporal:7233"
    assert s.api_port == 9000


def test_defaults_start_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "TEMPORAL_ADDRESS", "OMNIFLOW_DATABASE_URL", "OMNIFLOW_TEMPORAL_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.database_url is None and s.temporal_address is None
    assert s.data_dir == Path(".omniflow")


def test_as_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        database_url="postgresql://x/y", api_port=8123, admin_key="omf_secret", log_format="json"
    )
    for k, v in original.as_env().items():
        monkeypatch.setenv(k, v)
    again = Settings()
    assert again.model_dump() == original.model_dump()
    assert again.admin_key is not None and again.admin_key.get_secret_value() == "omf_secret"
