"""/docs (Swagger UI) and /redoc work without internet access: their scripts and styles are
served by the API itself (api.openapi.serve_docs), and a headless Chromium that can reach
nothing but the loopback renders the operations.

The app here has no database or engine behind it: the docs and the document need neither."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from runtime.ports import free_port
from runtime.settings import Settings

_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", temporal_address="127.0.0.1:1"
    )
    return create_app(settings, configure_logs=False)


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_local_assets(app: FastAPI, page: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        r = await client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "://" not in r.text.replace("http://api", ""), "the page names another host"
        urls = _asset_urls(r.text)
        kinds = set()
        for url in urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            kind = asset.headers["content-type"].split(";")[0]
            kinds.add(kind)
            if url.endswith(".js"):
                assert kind in ("text/javascript", "application/javascript"), (url, kind)
                assert len(asset.content) > 100_000  # the real bundle, not a stub
            elif url.endswith(".css"):
                assert kind == "text/css", (url, kind)
        assert any("javascript" in k for k in kinds)
        if page == "/docs":
            assert "text/css" in kinds
            assert "/openapi.json" in r.text


def _chromium() -> str | None:
    return next((path for name in _CHROMIUMS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def served(app: FastAPI) -> Iterator[str]:
    """The app behind a real uvicorn on a free loopback port, in a thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_swagger_ui_renders_in_a_browser_without_network(served: str, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium on PATH (tools/install_chromium.sh installs it where apt-get can)")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        # No network but the loopback: any other host fails to resolve, as when offline.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",  # let Swagger UI fetch /openapi.json and render
        "--dump-dom",
        f"{served}/docs",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert "omniflow" in dom  # the API's title, rendered from the document
    assert dom.count("opblock-summary-path") > 50, "the operations were not rendered"
    assert "/v1/orders" in dom
