"""Headless Chromium for the console's browser tests, driven by Playwright: the system's
Chromium (tools/install_chromium.sh), never a browser Playwright downloads; no network but
the loopback. Screenshots go to artifacts/console/ (git-ignored), kept as test artifacts."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
ARTIFACTS = Path(os.environ.get("OMNIFLOW_ARTIFACTS", "artifacts")) / "console"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing but the loopback resolves, as on a machine with no network beyond our API.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def system_chromium() -> str | None:
    return next((path for name in CHROMIUMS if (path := shutil.which(name))), None)


@asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, errors: list[str]) -> Page:
    """A page at a laptop's size that records every console error and failed request."""
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    return page


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path.resolve()}")  # where the artifact is
    return path


async def sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/console")
    await page.fill("form.signin input[name=key]", key)
    await page.click("form.signin button[type=submit]")
    await page.wait_for_selector("header#top .role")


async def sign_out(page: Page) -> None:
    await page.click("header#top button:has-text('Sign out')")
    await page.wait_for_selector("form.signin")


async def ready(page: Page, hash_: str) -> None:
    """Go to a console page and wait until it has rendered."""
    await page.evaluate(
        """h => {
            document.getElementById('main').dataset.ready = 'false';
            if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
            else location.hash = h;
        }""",
        hash_,
    )
    await page.wait_for_function(
        "h => location.hash === h && document.getElementById('main').dataset.ready === 'true'", arg=hash_
    )
