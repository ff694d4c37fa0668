"""`make screenshots`: every screenshot of the README regenerated into docs/img/ from a live
stack with demo data: the console's exception queues, an order on hold and the KPIs; a short
run of `omniflow simulate` (its summary table, as the terminal shows it); and the Temporal
UI's workflow list filtered on `OmniException IS NOT NULL`.

    python -m tools.screenshots          # starts `omniflow dev` (demo data) on free ports, stops it after
    python -m tools.screenshots --api-url http://127.0.0.1:8000 --ui-url http://127.0.0.1:8233
                                         # a stack already up (`make run`; key: .omniflow/admin_key)

The pictures are taken by the system's Chromium (tools/install_chromium.sh) through
Playwright, as the console's browser test does, at a laptop's 1280 × 800, and saved as
palette PNGs (Pillow) so the repository stays small."""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright
from rich.console import Console

from bench.stack import DevStack
from cli.simulate import Options, simulate

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
VIEWPORT = {"width": 1280, "height": 800}
# Nothing but the loopback resolves: the pictures show what a machine without network shows.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
STUCK = "OmniException IS NOT NULL"
HELD_ORDER = "order-web-DEMO-1003"  # the demo's order waiting for its payment (cli/demo.py)
COLORS = 128  # a palette this size keeps text crisp at a quarter of the bytes


@dataclass(frozen=True)
class Live:
    api: str
    ui: str
    key: str


@contextmanager
def stack(args: argparse.Namespace) -> Iterator[Live]:
    """The stack asked for, or `omniflow dev` with demo data in a temporary directory."""
    if args.api_url:
        key = args.api_key or (Path(".omniflow") / "admin_key").read_text().strip()
        yield Live(args.api_url.rstrip("/"), args.ui_url.rstrip("/"), key)
        return
    data = Path(tempfile.mkdtemp(prefix="omniflow-screenshots-"))
    dev = DevStack(data / "data", demo=True, extra_env={"OMNIFLOW_LOG_LEVEL": "WARNING"}).start()
    try:
        yield Live(dev.api, f"http://127.0.0.1:{dev.ui_port}", dev.admin_key)
    finally:
        dev.stop()
        shutil.rmtree(data, ignore_errors=True)


def simulator_svg(live: Live, seconds: float) -> str:
    """A short seeded run of `omniflow simulate`; its summary table as the terminal draws it."""
    console = Console(record=True, width=100, file=io.StringIO())
    opts = Options(live.api, live.key, seed=1, duration=seconds, orders=30, rate=1.0)
    outcome = asyncio.run(simulate(opts, console))
    refused = {step: n for step, n in outcome.tally.items() if "!" in step}
    print(f"screenshots: simulated {outcome.seconds:.0f} s, stopped: {outcome.stopped}; refused {refused}")
    return console.export_svg(title="omniflow simulate --seed 1 --orders 30 --rate 1")


def ready(page: Page, hash_: str) -> None:
    """A console page, once it has rendered (app.js sets main's data-ready)."""
    page.evaluate(
        "h => { document.getElementById('main').dataset.ready = 'false'; location.hash = h; }", hash_
    )
    page.wait_for_function(
        "h => location.hash === h && document.getElementById('main').dataset.ready === 'true'", arg=hash_
    )


def save(page: Page, name: str, *, full_page: bool = False) -> Path:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    small(path)
    return path


def small(path: Path) -> None:
    with Image.open(path) as shot:
        palette = shot.convert("RGB").quantize(colors=COLORS)
    palette.save(path, optimize=True)


def console_pages(page: Page, live: Live) -> list[Path]:
    page.goto(f"{live.api}/console")
    page.fill("form.signin input[name=key]", live.key)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("header#top .role")
    ready(page, "#/exceptions")
    shots = [save(page, "console-exceptions")]
    ready(page, f"#/orders/{HELD_ORDER}")
    shots.append(save(page, "console-order"))
    ready(page, "#/kpis?range=hours")
    shots.append(save(page, "console-kpis", full_page=True))
    return shots


def temporal_ui(page: Page, live: Live) -> Path:
    """The workflow list with the query people type for "waiting for a person"."""
    query = urllib.parse.quote(STUCK)
    page.goto(f"{live.ui}/namespaces/default/workflows?query={query}")
    page.wait_for_selector(f"text={HELD_ORDER}", timeout=30_000)
    page.wait_for_load_state("networkidle")
    return save(page, "temporal-omniexception")


def terminal(page: Page, svg: str) -> Path:
    page.set_content(f"<body style='margin:0;background:#fff'>{svg}</body>")
    path = OUT / "simulate.png"
    page.locator("svg").first.screenshot(path=str(path))
    small(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", help="a running stack's API (default: start one)")
    parser.add_argument("--ui-url", default="http://127.0.0.1:8233", help="its Temporal UI")
    parser.add_argument("--api-key", help="an admin key (default: .omniflow/admin_key)")
    parser.add_argument(
        "--simulate-seconds", type=float, default=150.0, help="how long the simulator runs at most"
    )
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args(argv)
    if not args.chromium:
        print("screenshots: no Chromium on PATH (make chromium installs it)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    with stack(args) as live:
        svg = simulator_svg(live, args.simulate_seconds)  # first: its traffic fills the queues
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            shots = [*console_pages(page, live), temporal_ui(page, live), terminal(page, svg)]
            browser.close()
    for path in shots:
        print(f"{path.relative_to(OUT.parent.parent)}  {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
