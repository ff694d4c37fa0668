"""The README's quick tour runs as written, on a fresh stack, in one bash process.

Which commands: every block fenced ```bash in the README's "## Using it" section (up to the
next level-2 heading, so its Purchasing and Replenishment subsections too), in order, joined
into one script; blocks that start with `make ` (the two commands, not tour steps) are left
out. The stack is `omniflow dev` with the demo data and no OMNIFLOW_ADMIN_KEY, as `make run`
starts it on a fresh machine: the admin key is generated into `.omniflow/admin_key` and the
script runs in the directory holding `.omniflow/`, so the README's `KEY=$(cat ...)` reads it.
The one change to the text: the stack listens on a free port, so the README's
`http://127.0.0.1:8000` becomes the stack's address.

The script runs under `set -euo pipefail` with `curl` wrapped in `--fail-with-body`: every
command must exit 0 and every request must answer 2xx (the README's curls print the problem
body on an error but exit 0, as a reader pasting them sees it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import DevStack

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Using it"
README_API = "http://127.0.0.1:8000"
PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body --show-error "$@"; echo; }
set -x
"""


def tour_blocks(text: str) -> list[str]:
    start = text.index(f"\n{SECTION}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    blocks = re.findall(r"^```bash\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    return [b for b in blocks if not b.lstrip().startswith("make ")]


def test_the_tour_is_found() -> None:
    blocks = tour_blocks(README.read_text())
    assert len(blocks) >= 4  # stock and transfers, orders, purchasing, replenishment
    script = "".join(blocks)
    assert script.count(README_API) == 1, "the tour sets API once, to the address `make run` prints"
    assert "KEY=$(cat .omniflow/admin_key)" in script


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    # admin_key="": OMNIFLOW_ADMIN_KEY empty, so the key is generated and kept in .omniflow/admin_key.
    # The tour checks what the commands do, not how fast: on a busy shared machine a workflow's
    # first update can take longer than the default 10 s before the API answers 503.
    s = DevStack(
        tmp_path_factory.mktemp("tour") / ".omniflow",
        admin_key="",
        demo=True,
        extra_env={"OMNIFLOW_RPC_TIMEOUT_SECONDS": "60"},
    ).start()
    yield s
    s.stop()


@pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("curl") is None,
    reason="curl or jq is missing (tools/install_test_tools.sh, run by make test, installs them)",
)
def test_the_tour_runs_as_written(stack: DevStack) -> None:
    script = PRELUDE + "".join(tour_blocks(README.read_text())).replace(README_API, stack.api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFLOW_")}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=stack.data_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        f"the tour stopped (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-3000:]}"
    )
    assert '"id":"order-web-A-1001"' in proc.stdout.replace(" ", "")
