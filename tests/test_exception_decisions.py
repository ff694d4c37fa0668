"""Deciding an exception over HTTP (issue 13): the answer shows the decision carried out, each
action's `data` has a declared schema the route checks before the workflow is asked, and a
refusal says the business reason under a stable problem type."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.exception_actions import check_data, data_schema
from tests.test_exceptions_api import short_transfer

__all__ = ["short_transfer"]  # the fixture, used by name

GOOD_ADDRESS = {
    "name": "Ada",
    "line1": "1 Main St",
    "city": "New York",
    "region": "NY",
    "postal_code": "10001",
}


async def _insert_exception(engine: AsyncEngine, exc_id: str, kind: str, actions: str) -> None:
    """An open exception whose workflow does not exist (it has finished and gone)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO exception (id, key, kind, subject_type, subject_id, workflow_id, due_at, priority,"
                " value_at_risk, actions, details) VALUES (:id, :id, :kind, 'order', 'o-gone', 'order-gone',"
                " now() + interval '1 hour', 1, 100, CAST(:actions AS jsonb), '{}')"
            ),
            {"id": exc_id, "kind": kind, "actions": actions},
        )


async def test_an_accepted_decision_answers_the_exception_as_decided(
    admin: httpx.AsyncClient, short_transfer: str, make_key: Callable[..., str], engine: AsyncEngine
) -> None:
    wh = {"Authorization": f"Bearer {make_key('warehouse')}"}
    r = await admin.post(
        f"/v1/exceptions/{short_transfer}/resolve", json={"action": "write_off", "note": "lost"}, headers=wh
    )
    assert r.status_code == 200, r.text
    decided = r.json()["exception"]
    assert decided["status"] == "resolved"
    assert decided["resolution"]["action"] == "write_off"
    assert decided["resolved_by"] and decided["resolved_at"]
    assert decided == (await admin.get(f"/v1/exceptions/{short_transfer}", headers=wh)).json()


async def test_action_data_is_checked_against_its_schema_before_the_workflow(
    admin: httpx.AsyncClient, short_transfer: str, make_key: Callable[..., str]
) -> None:
    wh = {"Authorization": f"Bearer {make_key('warehouse')}"}
    shown = (await admin.get(f"/v1/exceptions/{short_transfer}", headers=wh)).json()
    assert shown["actions"] == ["write_off", "found"]  # the old field stays
    assert [a["name"] for a in shown["action_schemas"]] == ["write_off", "found"]
    assert shown["action_schemas"][0]["data_schema"]["properties"] == {}
    r = await admin.post(
        f"/v1/exceptions/{short_transfer}/resolve",
        json={"action": "write_off", "data": {"junk": {"x": 1}}},
        headers=wh,
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-error"
    assert r.json()["errors"][0]["loc"] == ["body", "data", "junk"]
    assert "data.junk" in r.json()["detail"]
    still = (await admin.get(f"/v1/exceptions/{short_transfer}", headers=wh)).json()
    assert still["status"] == "open" and still["resolution"] is None


async def test_fix_address_data_names_the_field_at_fault(
    admin: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _insert_exception(engine, "exc-addr", "address_invalid", '["fix_address", "cancel"]')
    shown = (await admin.get("/v1/exceptions/exc-addr")).json()
    schemas = {a["name"]: a["data_schema"] for a in shown["action_schemas"]}
    assert schemas["fix_address"]["required"] == ["ship_to"]
    assert "postal_code" in schemas["fix_address"]["properties"]["ship_to"]["properties"]
    for data, loc in (
        ({}, ["body", "data", "ship_to"]),
        ({"ship_to": "somewhere"}, ["body", "data", "ship_to"]),
        ({"ship_to": {**GOOD_ADDRESS, "city": 7}}, ["body", "data", "ship_to", "city"]),
        ({"ship_to": {**GOOD_ADDRESS, "planet": "Mars"}}, ["body", "data", "ship_to", "planet"]),
    ):
        r = await admin.post("/v1/exceptions/exc-addr/resolve", json={"action": "fix_address", "data": data})
        assert r.status_code == 422, (data, r.text)
        assert r.json()["errors"][0]["loc"] == loc


async def test_a_decision_for_a_finished_workflow_says_why(
    admin: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _insert_exception(engine, "exc-gone", "fraud_review", '["approve", "cancel"]')
    r = await admin.post("/v1/exceptions/exc-gone/resolve", json={"action": "approve"})
    assert r.status_code == 409, r.text
    assert r.json()["type"] == "/problems/refused"
    assert r.json()["detail"] == "exception exc-gone can no longer be decided: order o-gone has finished"


@pytest.mark.parametrize(
    ("data", "locs"),
    [
        ({"status": "authorized", "amount": 4500, "reference": "inv-1"}, []),
        ({"status": "captured", "amount": 1, "reference": "r", "method": "card"}, []),
        ({}, [("status",), ("amount",), ("reference",)]),
        ({"status": "pending", "amount": 4500, "reference": "r"}, [("status",)]),
        ({"status": "authorized", "amount": "4500", "reference": "r"}, [("amount",)]),
        ({"status": "authorized", "amount": 0, "reference": "r"}, [("amount",)]),
        ({"status": "authorized", "amount": True, "reference": "r"}, [("amount",)]),
        ({"status": "authorized", "amount": 1, "reference": " "}, [("reference",)]),
        ({"status": "authorized", "amount": 1, "reference": "r", "extra": 1}, [("extra",)]),
    ],
)
def test_confirm_payment_data(data: dict[str, object], locs: list[tuple[str, ...]]) -> None:
    assert sorted(p.loc for p in check_data("confirm_payment", data)) == sorted(locs)


def test_actions_without_data_take_none() -> None:
    assert check_data("approve", {}) == []
    assert [p.loc for p in check_data("approve", {"anything": 1})] == [("anything",)]
    assert data_schema("write_off") == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }
    assert check_data("fix_address", {"ship_to": {**GOOD_ADDRESS, "lat": 40.7, "lon": None}}) == []
    assert data_schema("confirm_payment")["properties"]["status"]["enum"] == ["authorized", "captured"]
