#!/bin/sh
# curl and jq, which the README's quick tour uses (tests/test_readme_tour.py runs the tour with
# bash against `omniflow dev`). `make test` runs this before pytest. Only what is missing is
# installed, with apt-get as root (or `sudo -n`); where that cannot be done this says why and
# exits 0, and the test skips saying why.
set -eu
missing=""
for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -n "$missing" ] || exit 0

give_up() {
    echo "install_test_tools: $1, so$missing stays missing; the README tour test will be skipped" >&2
    exit 0
}
command -v apt-get >/dev/null 2>&1 || give_up "no apt-get here"
root=""
[ "$(id -u)" = "0" ] || root="sudo -n"
[ -z "$root" ] || command -v sudo >/dev/null 2>&1 || give_up "not root and no sudo"
echo "install_test_tools: apt-get install$missing" >&2
$root apt-get update -qq || give_up "apt-get update failed"
# $missing is one word a package (curl, jq: the package is named as its command).
DEBIAN_FRONTEND=noninteractive $root apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
    give_up "apt-get install failed"
