"""Order ids are `order-{channel}-{external_id}` and an external id may hold '-': a channel
code may not (api.schemas_catalog.ChannelCreate), so the first '-' after `order-` ends the
channel and no two (channel, external id) pairs share an id (`web` + `a-b` vs `web-a` + `b`)."""

from __future__ import annotations

import re

import httpx
from hypothesis import given
from hypothesis import strategies as st

from api.schemas_catalog import ChannelCreate
from api.schemas_orders import CODE as EXTERNAL_ID
from tests.orders_api import Headers, create, loc, order_body
from workflows.contracts.orders import order_workflow_id

# What the API accepts for a new channel, read from the request model itself.
CHANNEL_CODE: str = ChannelCreate.model_json_schema()["properties"]["code"]["pattern"]
channels = st.from_regex(CHANNEL_CODE, fullmatch=True)
external_ids = st.from_regex(EXTERNAL_ID, fullmatch=True)


def parse(order_id: str) -> tuple[str, str]:
    channel, external_id = order_id.removeprefix("order-").split("-", 1)
    return channel, external_id


@given(channels, external_ids)
def test_an_order_id_names_one_channel_and_one_external_id(channel: str, external_id: str) -> None:
    assert parse(order_workflow_id(channel, external_id)) == (channel, external_id)


@given(channels, external_ids, channels, external_ids)
def test_two_orders_never_share_an_id(c1: str, e1: str, c2: str, e2: str) -> None:
    if (c1, e1) != (c2, e2):
        assert order_workflow_id(c1, e1) != order_workflow_id(c2, e2)


def test_the_channels_in_use_keep_their_codes() -> None:
    for code in ("web", "marketplace", "b2b", "market", "edi", "app"):  # tests, demo, benches
        assert re.fullmatch(CHANNEL_CODE, code)


async def test_a_channel_code_with_a_dash_is_refused(
    api: httpx.AsyncClient, keys: dict[str, Headers]
) -> None:
    r = await api.post("/v1/channels", json={"code": "web-a", "type": "web"}, headers=keys["admin"])
    assert loc(r) == ["body", "code"]
    assert (await api.get("/v1/channels/web-a", headers=keys["admin"])).status_code == 404
    r = await api.post("/v1/channels", json={"code": "web_a", "type": "web"}, headers=keys["admin"])
    assert r.status_code == 201, r.text


async def test_the_pair_that_collided_is_now_one_order_and_one_refusal(
    api: httpx.AsyncClient, keys: dict[str, Headers]
) -> None:
    """`web` + `a-b` is order-web-a-b; `web-a` + `b` would be the same id, and channel `web-a`
    can no longer be created, so that order is refused as for any unknown channel."""
    assert order_workflow_id("web", "a-b") == order_workflow_id("web-a", "b")  # why the rule exists
    await api.post("/v1/channels", json={"code": "web-a", "type": "web"}, headers=keys["admin"])
    r = await create(api, keys["web"], order_body("a-b"))
    assert r.status_code == 202, r.text
    assert r.json()["id"] == "order-web-a-b"
    assert loc(await create(api, keys["admin"], order_body("b", channel="web-a"))) == ["body", "channel"]
    assert (await api.get("/v1/orders/order-web-a-b", headers=keys["admin"])).json()["channel"] == "web"
