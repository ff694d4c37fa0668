"""bench.feed_cost on a small table: the feed page reads its index only, a write's supersede
finds its SKU's younger events through ix_availability_event_sku and rewrites just those."""

from __future__ import annotations

from bench.feed_cost import run


def test_the_feed_cost_bench_measures_the_feed_and_the_supersede(database_url: str) -> None:
    costs = {c.what: c for c in run(database_url, 3000, younger=100)}
    page = costs["feed, page of 200 at the start"]
    assert page.rows == 200 and page.scans == "ix_availability_event_feed"
    usual = costs["write, 0 younger events (0 of its SKU)"]
    assert usual.rows == 0 and usual.scans == "ix_availability_event_sku"
    younger = costs["write, 100 younger events (5 of its SKU)"]
    assert younger.rows == 5 and younger.scans == "ix_availability_event_sku"
    assert costs["write, 100 younger events (5 of its SKU), no SKU index"].rows == 5
    assert costs["feed served at read time, page of 200 at the start"].buffers > page.buffers
