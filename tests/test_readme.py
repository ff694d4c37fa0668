"""The README stays true: every setting is documented, the two commands come first."""

from __future__ import annotations

import re
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


def test_every_screenshot_is_made_by_make_screenshots_and_small() -> None:
    """Each picture the README shows is in docs/img/, is one tools/screenshots.py writes (so
    `make screenshots` brings it up to date), and stays small."""
    root = Path(__file__).resolve().parent.parent
    shown = re.findall(r"!\[[^\]]+\]\((docs/img/[\w.-]+\.png)\)", README)
    assert len(shown) >= 5  # the console's three, the Temporal UI, the simulator
    tool = (root / "tools" / "screenshots.py").read_text()
    for path in shown:
        assert (root / path).stat().st_size < 150 * 1024, path
        name = Path(path).stem
        assert f'"{name}"' in tool or f'"{name}.png"' in tool, f"{name} is not made by make screenshots"
