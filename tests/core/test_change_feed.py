"""PostgreSQL change notifications (recsite/changes.py) and what they keep current:
the API-key cache and the serving catalog (recommendations/catalog.py).

Transactional tests: PostgreSQL notifies only on commit, and a normal test's
transaction is rolled back, so the feed is off in every other test.
"""

from __future__ import annotations

import select
import time
from datetime import timedelta

import psycopg2
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from items.models import Category, Item
from items.services import item_create, item_delete, item_set_hidden, item_update
from recommendations.catalog import catalog
from recommendations.models import Interaction
from recommendations.selectors.serving import item_states
from recsite.changes import APPLICATION_NAME, CHANNEL, Change, feed, merge_changes
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
from users.authentication import key_cache_clear
from users.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(check, timeout: float = 15.0):
    """Poll `check()` until it is truthy (a notification is handled in ms)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


@pytest.fixture
def listener():
    """A plain LISTEN connection to the test database: what the triggers send."""
    conn = psycopg2.connect(**connection.get_connection_params())
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"LISTEN {CHANNEL}")

    def received(timeout: float = 3.0) -> list[str]:
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([conn], [], [], 0.05)[0]:
                conn.poll()
                out.extend(n.payload for n in conn.notifies)
                del conn.notifies[:]
            elif out:
                break
        return out

    yield received
    conn.close()


@pytest.fixture
def live_feed(settings):
    """This process's feed, on and connected (its catalog loaded)."""
    settings.RECSITE = {**settings.RECSITE, "CHANGE_FEED": True}
    feed.stop()
    key_cache_clear()
    assert feed.wait_live(10), feed.last_error
    yield feed
    feed.stop()
    catalog.forget()
    key_cache_clear()


# --------------------------------------------------------------------- triggers


def test_item_writes_notify_the_changed_ids(listener):
    item = item_create(external_id="a", title="A", categories=["books"])
    payloads = listener()
    assert f"items_item:{item.pk}" in payloads
    assert f"items_item_categories:{item.pk}" in payloads  # the item, not the link
    assert "items_category:*" in payloads  # a new label

    item_update(item=item, title="A2")
    assert listener() == [f"items_item:{item.pk}"]

    pk = item.pk
    item_delete(item=item)
    assert f"items_item:{pk}" in listener()


def test_a_statement_changing_no_row_sends_nothing(listener):
    Item.objects.filter(external_id="nobody").update(title="x")
    assert listener(timeout=0.3) == []


def test_a_bulk_write_names_any_row_instead_of_every_id(listener):
    ItemFactory.create_batch(3)
    listener()
    Item.objects.bulk_create(
        [Item(external_id=f"bulk-{i:05d}", title="t") for i in range(2000)]
    )
    assert listener() == ["items_item:*"]


def test_interactions_do_not_notify(listener):
    user = EndUserFactory()
    item = ItemFactory()
    listener()
    InteractionFactory.create_batch(3, user=user, item=item)
    assert Interaction.objects.count() == 3
    assert listener(timeout=0.3) == []


def test_keys_notify_as_a_table(listener):
    key, _ = api_key_create(name="k")
    assert listener() == ["users_apikey:*"]
    api_key_revoke(api_key=key)
    assert listener() == ["users_apikey:*"]


def test_recording_a_keys_use_does_not_notify(listener, client):
    key, raw = api_key_create(name="k")
    listener()
    assert (
        client.get("/api/v1/items/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code
        == 200
    )
    key.refresh_from_db()
    assert key.last_used_at is not None  # written ...
    assert listener(timeout=0.3) == []  # ... without invalidating any key cache
    key.name = "renamed"
    key.save()
    assert listener() == ["users_apikey:*"]


def test_payloads_parse_and_merge():
    assert Change.parse("items_item:3,1") == Change("items_item", frozenset({1, 3}))
    assert Change.parse("users_apikey:*") == Change("users_apikey", None)
    assert Change.parse("items_item:x") == Change("items_item", None)
    assert Change.parse("garbage") is None
    merged = merge_changes(
        [
            Change("items_item", frozenset({1})),
            Change("items_tag", None),
            Change("items_item", frozenset({2})),
        ]
    )
    assert merged == [
        Change("items_item", frozenset({1, 2})),
        Change("items_tag", None),
    ]
    assert merge_changes([Change("t", frozenset({1})), Change("t", None)]) == [
        Change("t", None)
    ]


# ------------------------------------------------------------------------ feed


def test_the_feed_is_off_when_the_setting_says_so(settings):
    settings.RECSITE = {**settings.RECSITE, "CHANGE_FEED": False}
    feed.stop()
    assert not feed.live()
    assert not catalog.ready()


def test_versions_move_with_writes_to_their_table(live_feed):
    before_items = live_feed.version("items_item")
    before_keys = live_feed.version("users_apikey")
    ItemFactory()
    assert wait_for(lambda: live_feed.version("items_item") != before_items)
    assert live_feed.version("users_apikey") == before_keys


def test_a_lost_connection_turns_the_caches_off_until_it_is_back(live_feed):
    epoch = live_feed.version("items_item")
    with connection.cursor() as cursor:  # what a server restart does to it
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            [APPLICATION_NAME],
        )
    assert wait_for(lambda: live_feed.version("items_item") != epoch)
    assert live_feed.wait_live(10), live_feed.last_error  # reconnects, reloads
    item = ItemFactory(external_id="after-the-outage")
    assert wait_for(lambda: catalog.ready() and catalog.pk_of("after-the-outage"))
    assert catalog.pk_of("after-the-outage") == item.pk


def test_a_notification_arriving_during_a_handlers_query_is_not_left_waiting(
    live_feed,
):
    seen = []

    def slow_handler(table, ids, conn):
        if conn is None:
            return
        seen.append(ids)
        if len(seen) == 1:
            with connection.cursor() as cursor:  # the second one, mid-query
                cursor.execute("SELECT pg_notify(%s, 'test_slow_table:2')", [CHANNEL])
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.3)")

    live_feed.subscribe("test_slow_table", slow_handler)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, 'test_slow_table:1')", [CHANNEL])
        assert wait_for(lambda: len(seen) == 2, timeout=5), seen
        assert seen == [frozenset({1}), frozenset({2})]
    finally:
        live_feed._handlers["test_slow_table"].remove(slow_handler)


# -------------------------------------------------------------------- API keys


def test_a_revoked_key_is_refused_once_its_notification_arrives(live_feed, client):
    before = live_feed.version("users_apikey")
    key, raw = api_key_create(name="app")
    assert wait_for(lambda: live_feed.version("users_apikey") != before)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.get("/api/v1/items/", **headers).status_code == 200
    # The key is now cached: the next request does not look it up.
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/items/", **headers).status_code == 200
    assert not any("recsite_api_key" in q["sql"] for q in queries.captured_queries)
    api_key_revoke(api_key=key)
    assert wait_for(lambda: client.get("/api/v1/items/", **headers).status_code == 401)


def test_a_key_created_after_a_miss_is_accepted(live_feed, client):
    bogus = "rk_deadbeef_" + "x" * 43
    assert (
        client.get("/api/v1/items/", HTTP_AUTHORIZATION=f"Bearer {bogus}").status_code
        == 401
    )
    _, raw = api_key_create(name="later")
    assert wait_for(
        lambda: (
            client.get("/api/v1/items/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code
            == 200
        )
    )


# --------------------------------------------------------------------- catalog


def _rows(pks):
    return catalog.rows(pks, now=timezone.now())


def test_the_catalog_matches_the_database(live_feed):
    now = timezone.now()
    items = [
        item_create(
            external_id="plain", title="Plain", categories=["b", "a"], tags=["t"]
        ),
        item_create(external_id="hidden", title="Hidden", is_hidden=True),
        item_create(
            external_id="later", title="Later", available_from=now + timedelta(days=1)
        ),
        item_create(
            external_id="gone", title="Gone", available_until=now - timedelta(days=1)
        ),
        item_create(external_id="ünïcode", title="Tïtle ✓"),
    ]
    pks = [i.pk for i in items]
    assert wait_for(lambda: catalog.ready() and len(_rows(pks)) == 5)
    states, db_rows = item_states(pks, now=timezone.now(), rows_for=pks)
    # Read as changes since the load (entries beside the snapshot) ...
    assert catalog.stats()["changed_since_load"] == 5
    assert _rows(pks) == db_rows
    assert all(db_rows[pk].visible == states[pk][1] for pk in pks)
    # ... and from a snapshot loaded with them in (the flat arrays).
    live_feed.stop()
    catalog.forget()
    assert live_feed.wait_live(10) and wait_for(catalog.ready)
    assert catalog.stats()["changed_since_load"] == 0
    assert _rows(pks) == db_rows
    assert catalog.pk_of("ünïcode") == items[4].pk
    assert catalog.pk_of("nope") is None


def test_the_catalog_follows_every_kind_of_write(live_feed):
    item = item_create(external_id="x1", title="One", categories=["c1"])
    assert wait_for(lambda: catalog.pk_of("x1") == item.pk)

    item_update(item=item, title="Two", categories=["c2"])
    assert wait_for(lambda: _rows([item.pk])[item.pk].categories == ("c2",))
    assert _rows([item.pk])[item.pk].title == "Two"

    item_set_hidden(items=[item.pk], hidden=True)
    assert wait_for(lambda: not _rows([item.pk])[item.pk].visible)

    Category.objects.filter(name="c2").update(name="renamed")
    assert wait_for(lambda: _rows([item.pk])[item.pk].categories == ("renamed",))

    Item.objects.filter(pk=item.pk).update(external_id="x1-new")  # bypasses services
    assert wait_for(lambda: catalog.pk_of("x1-new") == item.pk)
    assert catalog.pk_of("x1") is None

    pk = item.pk
    item_delete(item=item)
    assert wait_for(lambda: pk not in _rows([pk]))
    assert catalog.pk_of("x1-new") is None


def test_a_snapshot_read_before_listening_catches_up_on_exactly_what_changed(
    settings,
):
    """gunicorn's master reads the catalog before it forks; each worker's feed then
    re-reads only the items whose rows changed meanwhile, label links included."""
    from items.models import Tag

    keep = item_create(external_id="keep", title="Keep", categories=["c"])
    renamed = item_create(external_id="renamed", title="Old title")
    relabelled = item_create(external_id="relabelled", title="R", tags=["t1"])
    unlinked = item_create(external_id="unlinked", title="U", categories=["c"])
    doomed = item_create(external_id="doomed", title="D")
    settings.RECSITE = {**settings.RECSITE, "CHANGE_FEED": True}
    feed.stop()
    catalog.forget()
    try:
        assert catalog.preload()  # as the master does: not listening
        loads, catch_ups = catalog.loads, catalog.catch_ups
        # Writes no one hears about (nothing here starts the feed: `ready()` would):
        item_update(item=renamed, title="New title")
        relabelled.tags.add(Tag.objects.create(name="t2"))  # a link only
        unlinked.categories.clear()
        item_delete(item=doomed)
        born = item_create(external_id="born", title="B")
        Category.objects.filter(name="c").update(name="c-renamed")

        # A worker's first request asks; its feed starts, listens, then catches up.
        # (Asked before the writes, the feed could catch up on some and be notified
        # of the rest while this test already reads the counters.)
        assert not catalog.ready()
        assert feed.wait_live(10), feed.last_error
        assert wait_for(catalog.ready)
        assert catalog.loads == loads and catalog.catch_ups == catch_ups + 1  # no full read
        assert catalog.stats()["changed_since_load"] == 5  # `keep` is untouched
        pks = [keep.pk, renamed.pk, relabelled.pk, unlinked.pk, born.pk]
        _, db_rows = item_states(pks, now=timezone.now(), rows_for=pks)
        assert _rows([*pks, 999_999]) == db_rows
        assert _rows([keep.pk])[keep.pk].categories == ("c-renamed",)
        assert catalog.pk_of("doomed") is None
        assert catalog.pk_of("born") == born.pk
    finally:
        feed.stop()
        catalog.forget()


def test_a_bulk_write_sets_the_catalog_aside_then_catches_up_once(live_feed, monkeypatch):
    import recommendations.catalog as catalog_module

    monkeypatch.setattr(catalog_module, "LOAD_CHUNK", 7)  # many chunks
    # One catch-up after the last batch: a busy machine may space the batches out,
    # so the quiet time this test waits for is longer than in production.
    monkeypatch.setattr(catalog_module, "QUIET_S", 3.0)
    reads = catalog.loads + catalog.catch_ups
    for start in range(0, 2000, 500):  # an import: batches of 500
        Item.objects.bulk_create(
            [
                Item(external_id=f"bulk-{i:05d}", title=f"T{i}")
                for i in range(start, start + 500)
            ]
        )
    # Set aside during the import (serving reads PostgreSQL), then one catch-up.
    assert wait_for(lambda: not catalog.ready() or catalog.stats()["items"] == 2000)
    assert wait_for(lambda: catalog.ready() and catalog.stats()["items"] == 2000)
    assert catalog.loads + catalog.catch_ups == reads + 1
    assert catalog.stats()["items"] == 2000
    expected = dict(Item.objects.values_list("external_id", "id"))
    assert {e: catalog.pk_of(e) for e in expected} == expected
    rows = _rows(list(expected.values()))
    assert {r.external_id for r in rows.values()} == set(expected)
    assert rows[expected["bulk-01234"]].title == "T1234"


def test_a_catalog_over_its_limit_is_not_used(settings):
    settings.RECSITE = {
        **settings.RECSITE,
        "CHANGE_FEED": True,
        "SERVING_CATALOG_MAX_ITEMS": 2,
    }
    ItemFactory.create_batch(3)
    feed.stop()
    try:
        assert feed.wait_live(10)
        assert not catalog.ready()  # serving reads PostgreSQL
    finally:
        feed.stop()
        catalog.forget()


def test_health_shows_the_feed_and_the_catalog(live_feed, client):
    ItemFactory.create_batch(2)
    assert wait_for(lambda: catalog.stats()["items"] == 2), catalog.stats()
    body = client.get("/api/v1/health/").json()
    assert body["status"] == "ok"
    assert body["change_feed"]["status"] == "live"
    assert body["change_feed"]["catalog"]["items"] == 2
    assert body["change_feed"]["catalog"]["ready"] is True
