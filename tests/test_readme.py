"""The README stays true: every setting is documented, the two commands come first."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from runtime.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        var = alias.choices[0] if isinstance(alias, AliasChoices) else f"OMNIFLOW_{name.upper()}"
        assert f"| `{var}` |" in README, f"{var} is missing from the README's configuration table"


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```")[1].strip().splitlines()
    assert first_block[0] == "bash"
    assert first_block[1].startswith("make run")
    assert first_block[2].startswith("make test")
