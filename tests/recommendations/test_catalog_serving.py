"""Serving from the in-memory catalog (recommendations/catalog.py) while the change
feed is live: the same answers as from PostgreSQL, no round trip, and writes seen
at once. Transactional: the feed only hears committed writes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from items.models import Item
from items.services import item_set_hidden
from recommendations.catalog import catalog
from recommendations.models import BusinessRule
from recsite.changes import feed
from tests.core.test_change_feed import wait_for
from tests.factories import BusinessRuleFactory
from users.authentication import key_cache_clear

pytestmark = pytest.mark.django_db(transaction=True)


def _similar(item_id: str) -> str:
    return f"/api/v1/items/{item_id}/similar/"


def _recs(user_id: str) -> str:
    return f"/api/v1/users/{user_id}/recommendations/"


def _answer(client, url: str, params: dict) -> dict:
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    body = response.json()
    body.pop("recommendation_id", None)
    return body


@pytest.fixture
def feed_switch(settings):
    """Turn the feed on (waiting for the catalog) or off."""

    def switch(on: bool) -> None:
        settings.RECSITE = {**settings.RECSITE, "CHANGE_FEED": on}
        feed.stop()
        catalog.forget()
        key_cache_clear()
        if on:
            assert feed.wait_live(10), feed.last_error
            assert wait_for(catalog.ready)

    yield switch
    switch(False)


def test_answers_from_memory_equal_answers_from_the_database(
    trained, api_client, feed_switch
):
    items = Item.objects.order_by("id")
    first, second, third = items[0], items[1], items[2]
    item_set_hidden(items=[third.pk], hidden=True)
    BusinessRuleFactory(
        action=BusinessRule.Action.BLOCK,
        target=BusinessRule.Target.ITEM,
        item=items[5],
    )
    BusinessRuleFactory(
        action=BusinessRule.Action.PIN,
        target=BusinessRule.Target.ITEM,
        item=items[7],
        position=1,
    )
    category = first.categories.first().name
    asks = [
        (_similar(first.external_id), {"n": 10}),
        (_similar(second.external_id), {"n": 5, "offset": 3}),
        (_similar(first.external_id), {"category": category}),
        (_similar(first.external_id), {"max_per_category": 1}),
        (_similar(first.external_id), {"exclude": second.external_id}),
        (_similar(first.external_id), {"user": "user-000002"}),
        (_recs("user-000001"), {"n": 10}),
        (_recs("user-000003"), {"category": category}),
        (_recs("no-such-user"), {}),
    ]
    feed_switch(False)
    from_db = [_answer(api_client, url, params) for url, params in asks]
    feed_switch(True)
    from_memory = [_answer(api_client, url, params) for url, params in asks]
    assert from_memory == from_db
    shown = {i["id"] for body in from_memory for i in body["items"]}
    assert third.external_id not in shown and items[5].external_id not in shown
    assert api_client.get(_similar("no-such-item")).status_code == 404


def test_a_similar_items_request_makes_no_query_once_warm(
    trained, api_client, feed_switch, settings
):
    feed_switch(True)
    settings.RECSITE = {**settings.RECSITE, "SERVING_REFRESH_S": 60}
    item = Item.objects.order_by("id").first().external_id
    _answer(api_client, _similar(item), {"n": 10})  # loads the model and the rules
    with CaptureQueriesContext(connection) as queries:
        body = _answer(api_client, _similar(item), {"n": 10})
    assert len(body["items"]) == 10
    assert queries.captured_queries == []


def test_a_hidden_item_leaves_the_lists_as_soon_as_it_is_notified(
    trained, api_client, feed_switch
):
    feed_switch(True)
    item = Item.objects.order_by("id").first().external_id
    body = _answer(api_client, _similar(item), {"n": 10})
    top = body["items"][0]["id"]
    item_set_hidden(items=Item.objects.filter(external_id=top), hidden=True)

    def gone() -> bool:
        return top not in [
            i["id"] for i in _answer(api_client, _similar(item), {})["items"]
        ]

    assert wait_for(gone)
    assert api_client.get(_similar(top)).status_code == 200  # still exists


def test_a_new_rule_applies_as_soon_as_it_is_notified(trained, api_client, feed_switch):
    feed_switch(True)
    item = Item.objects.order_by("id").first().external_id
    top = _answer(api_client, _similar(item), {"n": 10})["items"][0]["id"]
    BusinessRuleFactory(
        action=BusinessRule.Action.BLOCK,
        target=BusinessRule.Target.ITEM,
        item=Item.objects.get(external_id=top),
    )

    def blocked() -> bool:
        return top not in [
            i["id"] for i in _answer(api_client, _similar(item), {})["items"]
        ]

    assert wait_for(blocked)
