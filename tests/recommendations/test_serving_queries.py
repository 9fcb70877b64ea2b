"""The serving path's database work: few round trips, prepared statements, caches."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations import serving
from recsite.lookups import prepared_forget

pytestmark = pytest.mark.django_db

USER = "user-000004"


def _recs(client, user=USER):
    url = reverse("user-recommendations-list", kwargs={"user_id": user})
    response = client.get(url, {"n": 10})
    assert response.status_code == 200, response.content
    return response.json()


def _similar(client, item="item-000009"):
    url = reverse("item-similar-list", kwargs={"item_id": item})
    response = client.get(url, {"n": 10})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def steady(settings):
    """Production-like refresh interval: the periodic checks (active version, new
    items, unavailable items) run every few seconds, not on every request."""
    settings.RECSITE = {**settings.RECSITE, "SERVING_REFRESH_S": 60}


def test_a_repeated_request_reads_only_live_state(trained, api_client, steady):
    _recs(api_client)  # item rows cached now
    with CaptureQueriesContext(connection) as queries:
        body = _recs(api_client)
    assert body["strategy"] == "personalized"
    sql = [q["sql"] for q in queries.captured_queries]
    # the API key, the user's history with the rules' signature, the items'
    # visibility: nothing else (titles and labels come from the per-process cache)
    assert len(sql) == 3, sql
    assert any("recsite_user_history" in s for s in sql)
    assert any("recsite_item_states" in s for s in sql)


def test_rows_not_cached_come_with_the_states_in_one_query(
    trained, api_client, steady
):
    cached = _recs(api_client)
    similar = _similar(api_client)
    serving._item_row_cache.clear()  # a new worker, or items not seen before
    for call, before in ((_recs, cached), (_similar, similar)):
        with CaptureQueriesContext(connection) as queries:
            body = call(api_client)
        sql = [q["sql"] for q in queries.captured_queries]
        # the key, the user's history (or the item) with the rules' signature, and
        # the items' visibility with the titles and labels of the page
        assert len(sql) == 3, sql
        assert sum("recsite_item_states" in s for s in sql) == 1  # no second read
        assert body["items"] == before["items"]
        assert all(item["title"] for item in body["items"])


def test_similar_items_costs_the_same_round_trips(trained, api_client, steady):
    _similar(api_client)
    with CaptureQueriesContext(connection) as queries:
        _similar(api_client)
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 3, sql
    assert any("recsite_item_pk" in s for s in sql)


def test_without_prepared_statements_the_answers_are_the_same(
    trained, api_client, settings
):
    prepared = [i["id"] for i in _recs(api_client)["items"]]
    similar = [i["id"] for i in _similar(api_client)["items"]]
    settings.RECSITE = {**settings.RECSITE, "DB_PREPARED_STATEMENTS": False}
    with CaptureQueriesContext(connection) as queries:
        assert [i["id"] for i in _recs(api_client)["items"]] == prepared
        assert [i["id"] for i in _similar(api_client)["items"]] == similar
    assert not any("EXECUTE" in q["sql"] for q in queries.captured_queries)
    assert len(prepared) == 10


def test_statements_are_prepared_again_on_a_new_connection(trained, api_client):
    first = [i["id"] for i in _recs(api_client)["items"]]
    # A new server session knows none of the prepared statements (what happens
    # after CONN_MAX_AGE, a database restart or a failover).
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    prepared_forget()
    assert [i["id"] for i in _recs(api_client)["items"]] == first
    assert _similar(api_client)["items"]


def test_unknown_user_and_item_still_answer(trained, api_client):
    assert _recs(api_client, "nobody-at-all")["strategy"] == "popular"
    url = reverse("item-similar-list", kwargs={"item_id": "no-such-item"})
    assert api_client.get(url).status_code == 404
