"""The operations console's route and assets (api/routes/console.py, api/console/): the page
and every module it imports come from the API itself (nothing from another host, no build
step), under a strict Content-Security-Policy; config.json says where the Temporal UI is and
each kind's SLA; GET /v1/me tells the page who signed in and what they may decide.

In a browser, against a live API and worker: tests/test_console_browser.py."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from domain.exceptions import RESOLVER_ROLES, may_resolve
from runtime.settings import Settings

IMPORT = re.compile(r"""(?:import|from)\s*["']\./([\w.-]+\.js)["']""")
SVG_NS = "http://www.w3.org/2000/svg"  # a name, not fetched


async def test_the_page_and_its_modules_are_served_by_the_api(api: httpx.AsyncClient) -> None:
    r = await api.get("/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "://" not in r.text
    refs = re.findall(r'(?:src|href)="(/[^"]+)"', r.text)
    assert "/console/assets/app.js" in refs and "/console/assets/app.css" in refs
    seen: set[str] = set()
    todo = [ref.rsplit("/", 1)[1] for ref in refs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        asset = await api.get(f"/console/assets/{name}")
        assert asset.status_code == 200, name
        kind = asset.headers["content-type"].split(";")[0]
        if name.endswith(".js"):
            assert kind in ("text/javascript", "application/javascript"), (name, kind)
            assert "://" not in asset.text.replace(SVG_NS, ""), f"{name} names another host"
            assert "innerHTML" not in asset.text, f"{name}: API values go in as text, never as HTML"
            todo += IMPORT.findall(asset.text)
        else:
            assert kind == "text/css", (name, kind)
    # every page of the console is reached from app.js
    assert {
        "api.js",
        "dom.js",
        "decide.js",
        "exceptions.js",
        "order.js",
        "channels.js",
        "kpis.js",
        "chart.js",
    } <= seen
    assert (await api.get("/console/assets/nothing.js")).status_code == 404


async def test_config_names_the_temporal_ui_and_each_kinds_sla(settings: Settings) -> None:
    from api.app import create_app

    configured = settings.model_copy(
        update={"temporal_ui_url": "http://ui.example:8233", "exception_sla_seconds": {"fraud_review": 60}}
    )
    app = create_app(configured, configure_logs=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        config = (await client.get("/console/config.json")).json()
    assert config["temporal_ui_url"] == "http://ui.example:8233"
    assert config["temporal_namespace"] == "default"
    policies = config["exception_policies"]
    assert set(RESOLVER_ROLES) <= set(policies)
    assert policies["fraud_review"]["sla_seconds"] == 60
    assert policies["po_approval"]["sla_seconds"] == 86_400  # not configured: the default
    assert (
        policies["payment_pending"]["max_escalations"]
        == configured.exception_max_escalations_by_kind["payment_pending"]
    )
    for kind, policy in policies.items():
        roles = ("admin", "channel", "warehouse", "approver", "finance", "readonly")
        assert policy["deciders"] == [r for r in roles if may_resolve(r, kind)], kind
    assert policies["channel_sync_failed"]["deciders"] == ["admin"]
    assert 0 < config["due_soon_fraction"] < 1


async def test_me_names_the_key_and_the_kinds_it_may_decide(
    api: httpx.AsyncClient, make_key: Callable[..., str]
) -> None:
    assert (await api.get("/v1/me")).status_code == 401
    for role in ("admin", "channel", "warehouse", "approver", "finance", "readonly"):
        key = make_key(role, channel="web" if role == "channel" else None)
        r = await api.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        me = r.json()
        assert (me["role"], me["channel"], me["name"]) == (
            role,
            "web" if role == "channel" else None,
            f"test {role}",
        )
        assert me["id"].startswith("key")
        assert me["decides"] == sorted(k for k in RESOLVER_ROLES if may_resolve(role, k)), role
    finance = (await api.get("/v1/me", headers={"Authorization": f"Bearer {make_key('finance')}"})).json()
    assert "payment_pending" in finance["decides"] and "fraud_review" not in finance["decides"]
