"""The supplier scorecard (`GET /v1/suppliers/{code}/scorecard`, domain.supplier_scorecard):
a scripted scenario whose quantities are driven through the real PO workflow and worker
(confirmation, partial receipts, damage, QC), whose timestamps are then written directly
(the workflow records real now(); when things happened is what the scorecard measures, not
what the workflow does), checked against hand-computed figures; nulls without data; bad
input; and the pure arithmetic."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.supplier_scorecard import LineFacts, PoFacts, scorecard
from models.supplier_scorecard import supplier_facts
from runtime.settings import Settings
from tests.factories import standard_catalog
from tests.purchase_orders import add_item, add_supplier, place_po, po_when
from workflows.contracts import ConfirmedLine, QcLine, QcRequest, Receipt, ReceiptLine, SupplierConfirmation
from workflows.purchase_order import PurchaseOrderWorkflow as PO

D0 = datetime.combine(datetime.now(UTC).date() - timedelta(days=20), time(12), UTC)


def day(n: float) -> datetime:
    return D0 + timedelta(days=n)


async def _when(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def _scenario(engine: AsyncEngine, env: WorkflowEnvironment, settings: Settings) -> None:
    """ACME quotes 5 days; its MUG (inspected) quotes 8.

    - P-1 TEE 10, confirmed 8 promised day 7, sent day 0; R-1 5 on day 4, R-2 3 on day 6:
      complete day 6, on time. Lead time 4 − quoted 5 = −1.
    - P-2 MUG 5 + TEE 4, unconfirmed, sent day 1, expected day 9; R-1 on day 11: MUG 5 (QC:
      4 pass, 1 scrapped), TEE 3 + 1 damaged. MUG complete day 11: late; TEE never in full.
      Lead time 10 − quoted 8 = +2.
    - P-3 TEE 6, sent day 2, expected day 7, nothing received: past due, not in full.
    - P-4 TEE 1, never sent (waits for approval): not counted.
    """
    await standard_catalog(engine)
    await add_supplier(engine, lead_time_days=5)
    await add_item(engine, "TEE", 1000)
    await add_item(engine, "MUG", 400, inspect=True)
    await _when(engine, "UPDATE supplier_item SET lead_time_days = 8 WHERE sku = 'MUG'")
    c = env.client
    p1 = await place_po(engine, c, settings, "P-1", [("TEE", 10, 1000)])
    p2 = await place_po(engine, c, settings, "P-2", [("MUG", 5, 400), ("TEE", 4, 1000)])
    p3 = await place_po(engine, c, settings, "P-3", [("TEE", 6, 1000)])
    p4 = await place_po(engine, c, settings, "P-4", [("TEE", 1, 1000)], approval=True)
    for h in (p1, p2, p3):
        await po_when(h, lambda s: s.status == "sent")
    await po_when(p4, lambda s: s.status == "awaiting_approval")
    await p1.execute_update(PO.confirm, SupplierConfirmation([ConfirmedLine("TEE", 8, day(7).isoformat())]))
    await p1.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("TEE", 5)]))
    await p1.execute_update(PO.receive, Receipt("R-2", [ReceiptLine("TEE", 3)]))
    await p2.execute_update(PO.receive, Receipt("R-1", [ReceiptLine("MUG", 5), ReceiptLine("TEE", 3, 1)]))
    await p2.execute_update(
        PO.inspect, QcRequest([QcLine("MUG", 4, "pass"), QcLine("MUG", 1, "fail", "scrap")])
    )
    await po_when(p2, lambda s: any(ln.rejected == 1 for ln in s.lines))
    sent = {"P-1": (0, 5), "P-2": (1, 9), "P-3": (2, 7)}  # (sent, expected) days
    for number, (at, due) in sent.items():
        await _when(
            engine,
            "UPDATE purchase_order SET sent_at = :s, expected_at = :e WHERE number = :n",
            s=day(at),
            e=day(due),
            n=number,
        )
    for number, receipt, at in (("P-1", "R-1", 4), ("P-1", "R-2", 6), ("P-2", "R-1", 11)):
        await _when(
            engine,
            "UPDATE po_receipt SET received_at = :a WHERE po_number = :n AND receipt_number = :r",
            a=day(at),
            n=number,
            r=receipt,
        )


@pytest.fixture
async def reader(
    engine: AsyncEngine,
    worker: Worker,
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    admin: httpx.AsyncClient,
    make_key: Callable[..., str],
) -> dict[str, str]:
    await _scenario(engine, temporal_env, settings)
    return {"Authorization": f"Bearer {make_key('readonly')}"}


async def test_the_scorecard_of_a_scripted_scenario(admin: httpx.AsyncClient, reader: dict[str, str]) -> None:
    r = await admin.get(f"/v1/suppliers/ACME/scorecard?from={day(0).date()}", headers=reader)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "supplier": "ACME",
        "from": str(day(0).date()),
        "to": str(datetime.now(UTC).date()),
        "on_time_in_full": 0.25,  # P-1 TEE of 4 judged lines
        "lead_time_variance_days": {"mean": 0.5, "std_dev": round(math.sqrt(4.5), 2)},  # −1, +2
        "rejection_rate": round(2 / 17, 4),  # (1 scrapped + 1 damaged) / (16 received + 1 damaged)
        "counts": {"pos": 3, "lines": 4, "receipts": 3, "units": 17, "lines_judged": 4, "pos_received": 2},
    }
    later = await admin.get(
        f"/v1/suppliers/ACME/scorecard?from={day(1).date()}&to={day(2).date()}", headers=reader
    )  # P-2 and P-3 only
    body = later.json()
    assert (body["on_time_in_full"], body["rejection_rate"]) == (0.0, round(2 / 9, 4))
    assert body["lead_time_variance_days"] == {"mean": 2.0, "std_dev": None}  # one observation: no spread
    assert body["counts"] == {
        "pos": 2,
        "lines": 3,
        "receipts": 1,
        "units": 9,
        "lines_judged": 3,
        "pos_received": 1,
    }


async def test_every_supplier_at_once_for_the_kpi_report(engine: AsyncEngine, reader: dict[str, str]) -> None:
    async with engine.connect() as conn:
        facts = await supplier_facts(conn, day(0), day(30))  # suppliers=None: all of them
    assert set(facts) == {"ACME"}
    card = facts["ACME"].scorecard(datetime.now(UTC))
    assert card.on_time_in_full == Fraction(1, 4) and card.rejection_rate == Fraction(2, 17)
    assert (card.pos, card.lines, card.receipts, card.units) == (3, 4, 3, 17)


async def test_without_data_every_kpi_is_null(admin: httpx.AsyncClient, reader: dict[str, str]) -> None:
    r = await admin.get(
        f"/v1/suppliers/ACME/scorecard?from={day(3).date()}&to={day(5).date()}", headers=reader
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["on_time_in_full"] is None and body["rejection_rate"] is None
    assert body["lead_time_variance_days"] == {"mean": None, "std_dev": None}
    assert body["counts"] == {
        "pos": 0,
        "lines": 0,
        "receipts": 0,
        "units": 0,
        "lines_judged": 0,
        "pos_received": 0,
    }


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return dict(r.json())


async def test_unknown_suppliers_bad_dates_and_channels_are_refused(
    engine: AsyncEngine, api: httpx.AsyncClient, make_key: Callable[..., str]
) -> None:
    await add_supplier(engine)
    finance = {"Authorization": f"Bearer {make_key('finance')}"}
    assert (await api.get("/v1/suppliers/ACME/scorecard", headers=finance)).status_code == 200
    assert (
        "not found" in _problem(await api.get("/v1/suppliers/NOPE/scorecard", headers=finance), 404)["detail"]
    )
    _problem(await api.get("/v1/suppliers/ACME/scorecard?from=2024-13-01", headers=finance), 422)
    backwards = await api.get("/v1/suppliers/ACME/scorecard?from=2024-03-02&to=2024-03-01", headers=finance)
    assert "`from` must not be after `to`" in _problem(backwards, 422)["detail"]
    channel = {"Authorization": f"Bearer {make_key('channel', channel='web')}"}
    _problem(await api.get("/v1/suppliers/ACME/scorecard", headers=channel), 403)


# -- the pure arithmetic ------------------------------------------------------------------------

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _line(
    expected: int = 10,
    received: int = 10,
    *,
    damaged: int = 0,
    rejected: int = 0,
    due: float | None = 5,
    complete: float | None = 4,
    status: str = "partially_received",
) -> LineFacts:
    def at(n: float | None) -> datetime | None:
        return None if n is None else T0 + timedelta(days=n)

    return LineFacts("P", "S", expected, received, damaged, rejected, at(due), at(complete), status)


def _po(sent: float, first: float | None, quoted: int, receipts: int = 1) -> PoFacts:
    first_at = None if first is None else T0 + timedelta(days=first)
    return PoFacts("P", T0 + timedelta(days=sent), first_at, quoted, receipts)


def test_on_time_in_full_counts_only_lines_whose_outcome_is_known() -> None:
    as_of = T0 + timedelta(days=10)
    lines = [
        _line(),  # complete day 4, due day 5: on time in full
        _line(due=5, complete=5),  # complete at the promised moment: still on time
        _line(due=3, complete=4),  # late
        _line(received=6, complete=None, due=8),  # past due, short
        _line(received=0, complete=None, due=20),  # not due yet: not judged
        _line(received=0, complete=None, due=20, status="cancelled"),  # nothing more will come: judged
        _line(expected=0, received=0, complete=None, due=20, status="received"),  # confirmed 0: never in full
    ]
    card = scorecard(lines, [], as_of)
    assert card.lines == 7 and card.lines_judged == 6
    assert card.on_time_in_full == Fraction(2, 6)


def test_lead_time_variance_is_actual_minus_quoted_with_a_sample_deviation() -> None:
    pos = [_po(0, 4, 5), _po(1, 11, 8), _po(2, 9.5, 7), _po(3, None, 5, receipts=0)]
    card = scorecard([], pos, T0)
    variances = [-1.0, 2.0, 0.5]
    assert card.lead_time_variance_mean == pytest.approx(0.5)
    assert card.lead_time_variance_std_dev == pytest.approx(
        math.sqrt(sum((v - 0.5) ** 2 for v in variances) / 2)
    )
    assert (card.pos, card.pos_received, card.receipts) == (4, 3, 3)
    one = scorecard([], pos[:1], T0)
    assert one.lead_time_variance_mean == pytest.approx(-1.0) and one.lead_time_variance_std_dev is None


def test_the_rejection_rate_is_over_every_unit_that_arrived() -> None:
    lines = [_line(received=8, rejected=1), _line(received=3, damaged=1)]
    card = scorecard(lines, [], T0)
    assert card.rejection_rate == Fraction(2, 12) and card.units == 12


def test_no_data_is_null_never_zero() -> None:
    card = scorecard([], [], T0)
    assert card.on_time_in_full is None and card.rejection_rate is None
    assert card.lead_time_variance_mean is None and card.lead_time_variance_std_dev is None
    nothing_due = scorecard([_line(received=0, complete=None, due=20)], [_po(0, None, 5, 0)], T0)
    assert nothing_due.on_time_in_full is None and nothing_due.rejection_rate is None
    assert nothing_due.lead_time_variance_mean is None
