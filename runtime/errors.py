"""Start-up failures a person can act on: one line naming the setting, no traceback."""

from __future__ import annotations


class StartupError(Exception):
    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message
