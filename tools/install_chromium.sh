#!/bin/sh
# Chromium for the headless check that /docs renders offline (tests/test_docs_offline.py).
# `make test` runs this before pytest. Does nothing when a Chromium is already on PATH, or
# when apt-get is not there (the test then skips, saying why). Needs root (as on CI and the
# developers' machines); with sudo where that is how root is had.
set -eu
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get here; the headless /docs test will be skipped" >&2
    exit 0
fi
as_root=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root="sudo -n"
    else
        echo "install_chromium: not root and no sudo; the headless /docs test will be skipped" >&2
        exit 0
    fi
fi
echo "install_chromium: installing chromium with apt-get" >&2
if ! { $as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    echo "install_chromium: apt-get could not install chromium; the headless /docs test will be skipped" >&2
fi
exit 0
