"""The ledger: what finance sees through the API after real stock operations, and the
guarantees the database itself holds (append-only, balanced at commit, once per key).

1. Through the API with a finance key: receipts, a count loss, a transfer out and back, a
   receipt at another cost and a shipment (reservation + consume) → the trial balance
   balances, every account has the expected balance, the valuation equals the inventory
   accounts, entries filter by ref and page by cursor; warehouse and channel keys get 403.
2. The database: journal rows cannot be updated, deleted or truncated; an unbalanced entry
   written by raw SQL fails at COMMIT; the same business key posts once (same lines → the
   same entry, other lines → LedgerConflict), also from ten connections at once.
3. Counterexamples: bugs these tests found (fixed since; kept as regressions)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.posting import (
    CHART,
    DEBIT_NORMAL,
    INVENTORY_ACCOUNTS,
    capture_amounts,
    lines_for,
)
from models import finance, stock
from models.finance import LedgerConflict, Posting
from models.stock import Move, ReserveLine
from runtime.db import make_async_engine
from tests.factories import assert_inventory_clean, receive, standard_catalog

ENDPOINTS = ("/v1/ledger/accounts", "/v1/ledger/entries", "/v1/ledger/trial-balance", "/v1/valuation")


async def _client(api: httpx.AsyncClient, key: str) -> AsyncIterator[httpx.AsyncClient]:
    app = api.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        yield client


@pytest.fixture
async def finance_api(
    api: httpx.AsyncClient, make_key: Callable[..., str]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(api, make_key("finance")):
        yield client


@pytest.fixture
async def shop(engine: AsyncEngine) -> AsyncEngine:
    await standard_catalog(engine)
    return engine


async def _moves(
    eng: AsyncEngine, key: str, kind: str, moves: list[Move], reason: str, ref: str = ""
) -> None:
    async with eng.begin() as conn:
        await stock.apply_moves(conn, key, kind, moves, reason=reason, ref=ref)


async def _a_day_of_business(shop: AsyncEngine) -> None:
    """TEE and MUG cost 1000 a unit (standard cost). Values follow the moving average:
    TEE@DC-EAST 10 units 10000 → count loss 2 (−2000) → 3 ship to DC-WEST (−3000) → 1 comes
    back (+1000) → 3 received at 1300 (+3900): 9 units 9900 → 4 shipped at 1100 (−4400)."""
    await receive(shop, "TEE", "DC-EAST", 10)  # opening_stock 10000
    await receive(shop, "MUG", "DC-WEST", 5)  # opening_stock 5000
    async with shop.begin() as conn:
        await stock.apply_moves(
            conn,
            "count-1",
            "adjustment",
            [stock.adjustment_move("TEE", "DC-EAST", "sellable", -2)],
            reason="count",
            ref="count-1",
        )
    await _moves(
        shop,
        "tr-1:ship",
        "transfer",
        [Move("TEE", 3, "DC-EAST", "sellable", "DC-WEST", "in_transit")],
        "transfer",
        "tr-1",
    )
    await _moves(
        shop,
        "tr-1:back",
        "transfer",
        [Move("TEE", 1, "DC-WEST", "in_transit", "DC-EAST", "sellable")],
        "transfer",
        "tr-1",
    )
    await _moves(
        shop,
        "tr-1:receive",
        "transfer",
        [Move("TEE", 2, "DC-WEST", "in_transit", "DC-WEST", "sellable")],
        "transfer",
        "tr-1",
    )
    await _moves(
        shop,
        "po-1:receipt:1",
        "receipt",
        [Move("TEE", 3, "supplier", "virtual", "DC-EAST", "sellable", unit_cost=1300)],
        "receipt",
        "po-1",
    )
    async with shop.begin() as conn:
        await stock.reserve(conn, "o1:reserve", "web", [ReserveLine("1", "TEE", "DC-EAST", 4)], ref="o1")
    async with shop.begin() as conn:
        await stock.consume(conn, "o1:ship-1", "o1:reserve", ref="o1")


EXPECTED_BALANCES = {
    "1400": 12500,  # TEE@DC-EAST 5500 + TEE@DC-WEST 2000 + MUG@DC-WEST 5000
    "1410": 0,  # shipped 3000, 1000 came back, 2000 received
    "1420": 0,
    "2100": 3900,  # goods received not invoiced
    "3000": 15000,  # opening balance equity
    "5000": 4400,  # cost of goods sold: 4 units at 1100
    "5100": 2000,  # shrinkage: 2 units at 1000
}


async def test_the_books_after_a_day_of_business(shop: AsyncEngine, finance_api: httpx.AsyncClient) -> None:
    await _a_day_of_business(shop)

    tb = (await finance_api.get("/v1/ledger/trial-balance")).json()
    assert tb["currency"] == "USD"
    assert tb["total_debit"] == tb["total_credit"] > 0
    assert [a["code"] for a in tb["accounts"]] == sorted(CHART)  # every account, unused ones at zero
    assert sum(a["debit"] for a in tb["accounts"]) == tb["total_debit"]
    assert sum(a["credit"] for a in tb["accounts"]) == tb["total_credit"]
    assert {a["code"]: (a["debit"], a["credit"]) for a in tb["accounts"]}["1000"] == (0, 0)

    r = await finance_api.get("/v1/ledger/accounts")
    assert r.status_code == 200
    body = r.json()
    assert body["next_cursor"] is None
    accounts = {a["code"]: a for a in body["items"]}
    assert set(accounts) == set(CHART)
    for code, (name, type_) in CHART.items():
        assert (accounts[code]["name"], accounts[code]["type"]) == (name, type_)
    balances = {code: a["balance"] for code, a in accounts.items()}
    assert balances == {code: EXPECTED_BALANCES.get(code, 0) for code in CHART}
    # the balance is the trial balance's debits − credits in the account's normal direction
    for a in tb["accounts"]:
        net = a["debit"] - a["credit"]
        assert balances[a["code"]] == (net if CHART[a["code"]][1] in DEBIT_NORMAL else -net)

    valuation = (await finance_api.get("/v1/valuation")).json()
    assert valuation["currency"] == "USD"
    items = {(i["sku"], i["location"]): i for i in valuation["items"]}
    assert {k: (i["qty"], i["average_cost"], i["value"]) for k, i in items.items()} == {
        ("TEE", "DC-EAST"): (5, 1100, 5500),
        ("TEE", "DC-WEST"): (2, 1000, 2000),
        ("MUG", "DC-WEST"): (5, 1000, 5000),
    }
    assert valuation["total_value"] == sum(balances[a] for a in INVENTORY_ACCOUNTS) == 12500
    assert items[("TEE", "DC-EAST")]["accounts"] == [{"account": "1400", "qty": 5, "value": 5500}]

    await assert_inventory_clean(shop)


async def test_entries_filter_by_ref_and_event_and_page_by_cursor(
    shop: AsyncEngine, finance_api: httpx.AsyncClient
) -> None:
    await _a_day_of_business(shop)

    shipment = (await finance_api.get("/v1/ledger/entries", params={"ref": "o1"})).json()
    assert shipment["next_cursor"] is None
    [entry] = shipment["items"]
    assert (entry["key"], entry["event"], entry["ref"], entry["currency"]) == (
        "o1:ship-1",
        "shipment",
        "o1",
        "USD",
    )
    assert entry["balanced"] is True and entry["reverses"] is None and entry["posted_at"]
    assert sorted((ln["account"], ln["debit"], ln["credit"]) for ln in entry["lines"]) == [
        ("1400", 0, 4400),
        ("5000", 4400, 0),
    ]
    assert {(ln["channel"], ln["location"], ln["sku"]) for ln in entry["lines"]} == {
        ("web", "DC-EAST", "TEE")
    }

    transfer = (await finance_api.get("/v1/ledger/entries", params={"ref": "tr-1"})).json()["items"]
    assert [e["event"] for e in transfer] == ["transfer_ship", "transfer_receive", "transfer_receive"]
    ship = {(ln["account"], ln["location"]): (ln["debit"], ln["credit"]) for ln in transfer[0]["lines"]}
    assert ship == {("1400", "DC-EAST"): (0, 3000), ("1410", "DC-WEST"): (3000, 0)}

    receipts = (await finance_api.get("/v1/ledger/entries", params={"event": "goods_received"})).json()[
        "items"
    ]
    assert [(e["key"], e["ref"]) for e in receipts] == [("po-1:receipt:1", "po-1")]
    assert (await finance_api.get("/v1/ledger/entries", params={"ref": "nothing"})).json()["items"] == []

    everything = (await finance_api.get("/v1/ledger/entries", params={"limit": 500})).json()["items"]
    assert len(everything) == 8 and all(e["balanced"] for e in everything)
    assert [e["event"] for e in everything].count("opening_stock") == 2
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await finance_api.get("/v1/ledger/entries", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything]
    assert (await finance_api.get("/v1/ledger/entries", params={"cursor": "!!"})).status_code == 400
    assert (await finance_api.get("/v1/ledger/entries", params={"limit": 501})).status_code == 422


async def test_an_empty_ledger_reads_as_zeros(finance_api: httpx.AsyncClient) -> None:
    tb = (await finance_api.get("/v1/ledger/trial-balance")).json()
    assert tb["total_debit"] == tb["total_credit"] == 0
    assert all(a["debit"] == a["credit"] == 0 for a in tb["accounts"])
    assert (await finance_api.get("/v1/valuation")).json() == {
        "items": [],
        "total_value": 0,
        "currency": "USD",
    }
    assert (await finance_api.get("/v1/ledger/entries")).json() == {"items": [], "next_cursor": None}


async def test_only_finance_and_admin_read_the_books(
    api: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    finance_api: httpx.AsyncClient,
    make_key: Callable[..., str],
) -> None:
    others = {
        "warehouse": make_key("warehouse"),
        "channel": make_key("channel", channel="web"),
        "readonly": make_key("readonly"),
        "approver": make_key("approver"),
    }
    for path in ENDPOINTS:
        assert (await finance_api.get(path)).status_code == 200
        assert (await admin.get(path)).status_code == 200
        assert (await api.get(path)).status_code == 401
        for role, key in others.items():
            r = await api.get(path, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 403, (path, role)
            assert r.headers["content-type"].startswith("application/problem+json")


# -- 2. what the database guarantees --------------------------------------------------------


def _sale(total: int = 1100, channel: str | None = "web") -> list[Posting]:
    amounts = capture_amounts(revenue=total - 100 - 100, shipping=100, tax=100)
    return [Posting.of(ln, channel=channel) for ln in lines_for("capture", amounts)]


async def _post(eng: AsyncEngine, key: str, postings: list[Posting], event: str = "capture") -> int | None:
    async with eng.begin() as conn:
        return await finance.post(conn, key, event, postings, ref="o-9")


async def _count(eng: AsyncEngine, sql: str, **params: Any) -> Any:
    async with eng.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def test_journal_rows_can_never_be_changed(shop: AsyncEngine) -> None:
    await receive(shop, "TEE", "DC-EAST", 5)
    for sql in (
        "UPDATE journal_entry SET memo = 'edited'",
        "DELETE FROM journal_entry",
        "UPDATE journal_line SET debit = debit + 1",
        "DELETE FROM journal_line",
        "TRUNCATE journal_line",
        "TRUNCATE journal_entry CASCADE",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with shop.begin() as conn:
                await conn.execute(text(sql))
    assert await _count(shop, "SELECT count(*) FROM journal_line") == 2
    await assert_inventory_clean(shop)


async def _raw_entry(
    eng: AsyncEngine, key: str, lines: list[tuple[str, int, int]], ran: list[str] | None = None
) -> list[str]:
    """Write an entry and its lines by raw SQL in one transaction; `ran` collects the
    statements that succeeded (the balance check is deferred to COMMIT)."""
    ran = [] if ran is None else ran
    async with eng.begin() as conn:
        entry = (
            await conn.execute(
                text(
                    "INSERT INTO journal_entry (key, event, ref, currency, payload_hash) "
                    "VALUES (:k, 'manual', '', 'USD', 'x') RETURNING id"
                ),
                {"k": key},
            )
        ).scalar_one()
        ran.append("entry")
        for account, debit, credit in lines:
            await conn.execute(
                text("INSERT INTO journal_line (entry_id, account, debit, credit) VALUES (:e, :a, :d, :c)"),
                {"e": entry, "a": account, "d": debit, "c": credit},
            )
            ran.append(account)
    return ran


async def test_an_unbalanced_entry_fails_at_commit(engine: AsyncEngine) -> None:
    ran: list[str] = []
    with pytest.raises(DBAPIError, match="does not balance"):
        await _raw_entry(engine, "manual-1", [("1000", 100, 0)], ran)
    assert ran == ["entry", "1000"]  # every statement succeeded: COMMIT refused the entry
    with pytest.raises(DBAPIError, match="does not balance"):  # an entry without lines
        await _raw_entry(engine, "manual-2", [])
    # balanced by the end of the transaction: fine, even though it was not after each line
    assert await _raw_entry(engine, "manual-3", [("1000", 100, 0), ("4000", 0, 60), ("4100", 0, 40)])
    assert await _count(engine, "SELECT key FROM journal_entry") == "manual-3"
    with pytest.raises(DBAPIError, match="ck_journal_line_side"):  # a line on both sides
        await _raw_entry(engine, "manual-4", [("1000", 5, 5), ("4000", 0, 5)])
    async with engine.connect() as conn:
        assert await finance.check(conn) == []


async def test_a_business_key_posts_once(engine: AsyncEngine) -> None:
    first = await _post(engine, "capture:o-9:1", _sale())
    again = await _post(engine, "capture:o-9:1", list(reversed(_sale())))  # same lines, any order
    assert first is not None and again == first
    with pytest.raises(LedgerConflict):
        await _post(engine, "capture:o-9:1", _sale(total=1200))
    with pytest.raises(LedgerConflict):  # same amounts, another dimension
        await _post(engine, "capture:o-9:1", _sale(channel="marketplace"))
    with pytest.raises(LedgerConflict):  # same lines, another event
        await _post(engine, "capture:o-9:1", _sale(), event="invoice_on_account")
    assert await _count(engine, "SELECT count(*) FROM journal_entry") == 1
    assert await _count(engine, "SELECT count(*) FROM journal_line") == 4
    assert await _post(engine, "nothing", []) is None  # nothing to post: no entry
    async with engine.connect() as conn:
        assert await finance.check(conn) == []


async def test_a_correction_is_a_reversing_entry(engine: AsyncEngine, finance_api: httpx.AsyncClient) -> None:
    entry = await _post(engine, "capture:o-9:1", _sale())
    assert entry is not None
    async with engine.begin() as conn:
        mirror = await finance.reverse(conn, "capture:o-9:1:reversal", entry, memo="wrong order")
    async with engine.begin() as conn:  # reversing is once per key too
        assert await finance.reverse(conn, "capture:o-9:1:reversal", entry) == mirror
    items = (await finance_api.get("/v1/ledger/entries", params={"ref": "o-9"})).json()["items"]
    assert [(e["id"], e["event"], e["reverses"]) for e in items] == [
        (entry, "capture", None),
        (mirror, "reversal", entry),
    ]
    assert items[1]["memo"] == "wrong order"
    assert sorted(
        (ln["account"], ln["debit"], ln["credit"], ln["channel"]) for ln in items[1]["lines"]
    ) == sorted((ln["account"], ln["credit"], ln["debit"], ln["channel"]) for ln in items[0]["lines"])
    accounts = (await finance_api.get("/v1/ledger/accounts")).json()["items"]
    assert all(a["balance"] == 0 for a in accounts)
    async with engine.connect() as conn:
        assert await finance.check(conn) == []


# -- concurrency: one business key from ten connections at once ---------------------------------


async def _waiting_on_locks(eng: AsyncEngine) -> int:
    async with eng.connect() as conn:
        n = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(n.scalar_one())


async def _race(
    database_url: str, clients: int, postings: Callable[[int], list[Posting]], *, first_commits: bool = True
) -> tuple[list[Any], AsyncEngine]:
    """Client 0 posts and holds its transaction open until the other clients are all blocked
    on its row (seen in pg_stat_activity), then commits (or rolls back)."""
    eng = make_async_engine(database_url, pool_size=clients + 2)
    holding = asyncio.Event()

    async def first() -> int | None:
        async with eng.connect() as conn:
            tx = await conn.begin()
            entry = await finance.post(conn, "race:1", "capture", postings(0), ref="race")
            holding.set()
            for _ in range(500):
                if await _waiting_on_locks(eng) >= clients - 1:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the other clients never blocked on the first one")
            await (tx.commit() if first_commits else tx.rollback())
            return entry if first_commits else None

    async def other(i: int) -> int | None:
        await holding.wait()
        async with eng.begin() as conn:
            return await finance.post(conn, "race:1", "capture", postings(i), ref="race")

    results = await asyncio.gather(first(), *(other(i) for i in range(1, clients)), return_exceptions=True)
    return list(results), eng


async def test_ten_connections_posting_one_key_write_one_entry(database_url: str) -> None:
    results, eng = await _race(database_url, 10, lambda i: _sale())
    try:
        assert all(isinstance(r, int) for r in results), results
        assert len(set(results)) == 1  # the losers waited for the winner's commit and got its id
        assert await _count(eng, "SELECT count(*) FROM journal_entry") == 1
        assert await _count(eng, "SELECT count(*) FROM journal_line") == 4
        async with eng.connect() as conn:
            assert await finance.check(conn) == []
    finally:
        await eng.dispose()


async def test_ten_connections_posting_one_key_with_other_lines_conflict(database_url: str) -> None:
    results, eng = await _race(database_url, 10, lambda i: _sale(total=1100 + i))
    try:
        assert isinstance(results[0], int)
        assert all(isinstance(r, LedgerConflict) for r in results[1:]), results
        assert await _count(eng, "SELECT count(*) FROM journal_entry") == 1
        assert await _count(eng, "SELECT sum(debit) FROM journal_line") == 1100
    finally:
        await eng.dispose()


async def test_when_the_first_poster_rolls_back_one_of_the_others_posts(database_url: str) -> None:
    results, eng = await _race(database_url, 10, lambda i: _sale(), first_commits=False)
    try:
        assert results[0] is None
        ids = results[1:]
        assert all(isinstance(r, int) for r in ids), results
        assert len(set(ids)) == 1
        assert await _count(eng, "SELECT count(*) FROM journal_entry") == 1
        async with eng.connect() as conn:
            assert await finance.check(conn) == []
    finally:
        await eng.dispose()


# -- 3. counterexamples -------------------------------------------------------------------------


async def test_reversing_an_inventory_entry_keeps_the_books_equal_to_the_valuation(shop: AsyncEngine) -> None:
    await receive(shop, "TEE", "DC-EAST", 10)
    async with shop.begin() as conn:
        await stock.apply_moves(
            conn,
            "count-9",
            "adjustment",
            [stock.adjustment_move("TEE", "DC-EAST", "sellable", -2)],
            reason="count",
        )
    async with shop.connect() as conn:
        entry = (await conn.execute(text("SELECT id FROM journal_entry WHERE key = 'count-9'"))).scalar_one()
    with contextlib.suppress(Exception):  # refusing is a correct answer
        async with shop.begin() as conn:
            await finance.reverse(conn, "count-9:reversal", int(entry))
    async with shop.connect() as conn:
        assert await finance.check(conn) == []


async def test_an_entry_is_reversed_at_most_once(engine: AsyncEngine) -> None:
    entry = await _post(engine, "capture:o-9:1", _sale())
    assert entry is not None
    async with engine.begin() as conn:
        await finance.reverse(conn, "correction-1", entry)
    with contextlib.suppress(Exception):  # refusing is a correct answer
        async with engine.begin() as conn:
            await finance.reverse(conn, "correction-2", entry)
    assert await _count(engine, "SELECT count(*) FROM journal_entry WHERE reverses = :e", e=entry) == 1
