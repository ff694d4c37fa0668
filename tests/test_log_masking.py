"""No log line carries an email, a postal address, a payment reference, an API key or a
signing secret in clear (runtime/log_masking.py): the logs of an end-to-end run of the whole
stack are grepped for the raw values — none may appear, the masked forms do — and the
processor is run through the configured logging on lines of our own and of the standard
library (an exception's text, nested fields, a URL's password)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.stack import DevStack

EMAIL = "zelda.quint@masking.example"
LINE1 = "742 Evergreen Terrace"
REFERENCE = f"psp-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    s = DevStack(tmp_path_factory.mktemp("masking") / "data").start()
    yield s
    s.stop()


def _ok(r: httpx.Response, *codes: int) -> dict[str, object]:
    assert r.status_code in codes, r.text
    return r.json() if r.content else {}


def test_an_end_to_end_run_logs_nothing_in_clear(stack: DevStack) -> None:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=30) as admin:
        idem = lambda: {"Idempotency-Key": uuid.uuid4().hex}  # noqa: E731
        _ok(
            admin.post(
                "/v1/locations",
                json={"code": "DC-1", "name": "DC", "type": "dc", "lat": 40.7, "lon": -74.0},
                headers=idem(),
            ),
            201,
        )
        _ok(admin.post("/v1/skus", json={"code": "TEE", "name": "Tee", "price": 2000}, headers=idem()), 201)
        _ok(
            admin.post(
                "/v1/channels", json={"code": "web", "type": "web", "locations": ["DC-1"]}, headers=idem()
            ),
            201,
        )
        adjustment = {"sku": "TEE", "location": "DC-1", "status": "sellable", "delta": 5, "reason": "initial"}
        _ok(admin.post("/v1/inventory/adjustments", json=adjustment, headers=idem()), 200, 201)
        key = str(_ok(admin.post("/v1/api-keys", json={"role": "channel", "channel": "web"}), 201)["key"])
        target = _ok(
            admin.put(
                "/v1/channels/web/publishing", json={"url": "http://127.0.0.1:9/hook", "enabled": False}
            ),
            200,
        )
        secret = str(target["secret"])
        order = {
            "channel": "web",
            "external_id": "MASK-1",
            "customer": {"id": "c-mask", "email": EMAIL},
            "ship_to": {
                "name": "Zelda Quint",
                "line1": LINE1,
                "city": "Springfield",
                "region": "NY",
                "postal_code": "10001",
                "country": "US",
                "lat": 40.75,
                "lon": -73.99,
            },
            "lines": [{"sku": "TEE", "qty": 1, "unit_price": 2000}],
            "shipping_amount": 500,
            "tax_amount": 0,
            "payment": {"method": "card", "status": "authorized", "amount": 2500, "reference": REFERENCE},
        }
        channel = {"Authorization": f"Bearer {key}", **idem()}
        order_id = _ok(admin.post("/v1/orders", json=order, headers=channel), 202)["id"]
        for _ in range(150):
            if admin.get(f"/v1/orders/{order_id}").json()["status"] == "allocated":
                break
            time.sleep(0.2)
        assert admin.get("/v1/orders", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
    stack.stop()
    logs = stack.stderr() + (stack.data_dir / "temporal.log").read_text(errors="replace")
    for raw in (EMAIL, LINE1, REFERENCE, key, secret, stack.admin_key):
        assert raw not in logs, f"{raw!r} is in the logs"
    assert "z***@masking.example" in logs
    assert f"***{REFERENCE[-4:]}" in logs
    assert '"ship_to": {"name": "***", "line1": "***"' in logs


_EMIT = """
import logging, structlog
from runtime.logging import configure_logging
configure_logging("json", "INFO")
log = structlog.stdlib.get_logger("t")
log.info("nested", order={"customer_email": "ann@shop.example", "billing_address": {"line1": "1 Main", "country": "US"}},
         payment_reference="ch_1234567890", headers={"authorization": "Bearer omf_abcdefgh12345678"})
logging.getLogger("uvicorn.error").warning("client sent key omf_abcdefgh12345678 and whsec_s3cr3t for bob@x.example")
try:
    raise RuntimeError("connect postgresql://omniflow:hunter2@db:5432/omniflow failed for ann@shop.example")
except RuntimeError:
    logging.getLogger("temporalio.activity").exception("activity failed")
"""


def test_the_processor_masks_our_lines_and_the_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", _EMIT], capture_output=True, text=True, check=True).stderr
    lines = [json.loads(line) for line in out.splitlines()]
    for raw in (
        "ann@shop.example",
        "1 Main",
        "ch_1234567890",
        "omf_abcdefgh12345678",
        "s3cr3t",
        "hunter2",
        "bob@x.example",
    ):
        assert raw not in out, raw
    first = lines[0]
    assert first["order"] == {
        "customer_email": "a***@shop.example",
        "billing_address": {"line1": "***", "country": "US"},
    }
    assert first["payment_reference"] == "***7890" and first["headers"] == {"authorization": "***"}
    assert lines[1]["event"] == "client sent key omf_abcdefgh… and whsec_*** for b***@x.example"
    assert (
        "postgresql://omniflow:***@db:5432" in lines[2]["exception"]
        and "a***@shop.example" in lines[2]["exception"]
    )
