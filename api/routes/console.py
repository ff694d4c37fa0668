"""The operations console (docs/console.md): one HTML page with its ES modules and styles,
served by the API from api/console/ as they are in the repository (no build step, no CDN,
no chart library: the charts are SVG the page draws), and `/console/config.json`, the little
the page needs that the API does not answer: where the Temporal Web UI is, and each exception
kind's SLA (for "due soon").

Everything else the page reads and writes through the public API with the key it was signed
in with, so it can do exactly what that key may do and no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.auth import Role
from api.deps import SettingsDep
from domain.exceptions import RESOLVER_ROLES, may_resolve

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
ASSETS = "/console/assets"
# Everything from the API itself; nothing inline, nothing framed. A link out (the Temporal UI)
# is a navigation, which this does not restrict.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DUE_SOON_FRACTION = 0.25  # "due soon": less than this share of the kind's SLA left

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console_page() -> FileResponse:
    return FileResponse(
        CONSOLE_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


@router.get("/console/config.json")
async def console_config(settings: SettingsDep) -> dict[str, Any]:
    kinds = sorted({*RESOLVER_ROLES, *settings.exception_sla_seconds})
    policies = {kind: settings.exception_policy(kind, "") for kind in kinds}
    return {
        "temporal_ui_url": settings.temporal_ui_url,
        "temporal_namespace": settings.temporal_namespace,
        "exception_policies": {
            kind: {
                "sla_seconds": p.sla_seconds,
                "max_escalations": p.max_escalations,
                "deciders": [role.value for role in Role if may_resolve(role, kind)],
            }
            for kind, p in policies.items()
        },
        "due_soon_fraction": DUE_SOON_FRACTION,
    }


def serve_console(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=CONSOLE_DIR), name="console-assets")
    app.include_router(router)
