"""The item admin: filters, search, bulk actions, the change page, query counts."""

import datetime as dt

import pytest
from django.contrib.admin import helpers
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from items.models import Item
from recommendations.models import BusinessRule
from tests.factories import ItemFactory

CHANGELIST = "admin:items_item_changelist"
MAX_CHANGELIST_QUERIES = 12
MAX_CHANGE_PAGE_QUERIES = 30


def _shown(response) -> set[str]:
    return {item.external_id for item in response.context["cl"].result_list}


def _act(client, action: str, items, **extra):
    data = {
        "action": action,
        helpers.ACTION_CHECKBOX_NAME: [i.pk for i in items],
        **extra,
    }
    return client.post(reverse(CHANGELIST), data, follow=True)


@pytest.mark.django_db
def test_filters_availability_interactions_category_and_search(admin_client, catalog):
    now = timezone.now()
    ItemFactory(external_id="soon", available_from=now + dt.timedelta(days=2))
    ItemFactory(external_id="gone", available_until=now - dt.timedelta(days=1))
    url = reverse(CHANGELIST)

    scheduled = admin_client.get(url, {"availability": "scheduled"})
    expired = admin_client.get(url, {"availability": "expired"})
    available = admin_client.get(url, {"availability": "now"})
    cold = admin_client.get(url, {"has_interactions": "no"})
    books = admin_client.get(url, {"categories__id__exact": catalog["books"].pk})
    by_title = admin_client.get(url, {"q": "number 11"})
    by_id = admin_client.get(url, {"q": "item-7"})

    assert _shown(scheduled) == {"soon"}
    assert _shown(expired) == {"gone"}
    assert "soon" not in _shown(available) and "item-0" in _shown(available)
    assert _shown(cold) == {"item-8", "item-9", "item-10", "soon", "gone"}
    assert _shown(books) == {f"item-{i}" for i in range(0, 12, 2)}
    assert _shown(by_title) == {"item-11"}
    assert _shown(by_id) == {"item-7"}


@pytest.mark.django_db
def test_changelist_shows_labels_state_and_counts(admin_client, catalog):
    Item.objects.filter(external_id="item-1").update(is_hidden=True)
    response = admin_client.get(reverse(CHANGELIST))
    html = response.content.decode()
    assert response.status_code == 200
    assert "books" in html and "films" in html and "new" in html
    assert 'rs-badge-hidden">hidden' in html and 'rs-badge-live">live' in html
    counts = {
        i.external_id: i.interaction_count for i in response.context["cl"].result_list
    }
    assert counts["item-0"] == 5 and counts["item-11"] == 1 and counts["item-9"] == 0


@pytest.mark.django_db
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, catalog, django_assert_max_num_queries
):
    url = reverse(CHANGELIST)
    admin_client.get(url)  # warm the session and content types
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(40):
        ItemFactory(
            external_id=f"more-{i}", categories=["books", f"c{i}"], tags=[f"t{i}"]
        )
    with django_assert_max_num_queries(MAX_CHANGELIST_QUERIES):
        response = admin_client.get(url)
    assert len(response.context["cl"].result_list) == 50
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)


@pytest.mark.django_db
def test_hide_and_unhide_actions(admin_client, catalog):
    first, second = catalog["items"][:2]

    response = _act(admin_client, "hide", [first, second])

    assert "Hid 2 item(s)." in response.content.decode()
    assert set(
        Item.objects.filter(is_hidden=True).values_list("external_id", flat=True)
    ) == {
        "item-0",
        "item-1",
    }
    _act(admin_client, "unhide", [first])
    assert list(
        Item.objects.filter(is_hidden=True).values_list("external_id", flat=True)
    ) == ["item-1"]


@pytest.mark.django_db
def test_add_and_remove_a_category_through_the_intermediate_form(admin_client, catalog):
    targets = catalog["items"][:3]

    form_page = _act(admin_client, "add_category", targets)
    assert form_page.templates[0].name == "admin/rs_action_form.html"
    assert "Add a category" in form_page.content.decode()
    assert not any(i.categories.filter(name="sale").exists() for i in targets)

    done = _act(admin_client, "add_category", targets, apply="1", names="sale, summer")
    assert "Added category sale, summer to 3 item(s)." in done.content.decode()
    for item in targets:
        names = set(item.categories.values_list("name", flat=True))
        assert {"sale", "summer"} <= names
        assert names & {"books", "films"}  # the old categories are kept

    _act(admin_client, "remove_category", targets[:1], apply="1", names="sale")
    assert not targets[0].categories.filter(name="sale").exists()
    assert targets[1].categories.filter(name="sale").exists()


@pytest.mark.django_db
def test_add_tag_requires_a_name(admin_client, catalog):
    response = _act(
        admin_client, "add_tag", catalog["items"][:1], apply="1", names=" , "
    )
    assert response.templates[0].name == "admin/rs_action_form.html"
    assert "Enter at least one name." in response.content.decode()


@pytest.mark.django_db
def test_pin_boost_and_block_actions_create_rules(admin_client, catalog):
    a, b, c = catalog["items"][:3]

    _act(admin_client, "pin", [a, b], apply="1", position="2")
    _act(admin_client, "boost", [c], apply="1", factor="3.5", name="summer push")
    _act(admin_client, "block", [a], apply="1")

    pins = BusinessRule.objects.filter(action="pin").order_by("position")
    assert [(r.item.external_id, r.position) for r in pins] == [
        ("item-0", 2),
        ("item-1", 3),
    ]
    boost = BusinessRule.objects.get(action="boost")
    assert (boost.item, boost.factor, boost.name) == (c, 3.5, "summer push")
    assert BusinessRule.objects.filter(action="block", item=a, target="item").exists()


@pytest.mark.django_db
def test_boost_without_factor_shows_the_form_again(admin_client, catalog):
    response = _act(admin_client, "boost", catalog["items"][:1], apply="1", factor="")
    assert response.templates[0].name == "admin/rs_action_form.html"
    assert not BusinessRule.objects.exists()


@pytest.mark.django_db
def test_change_page_shows_activity_chart_and_similar_items(
    admin_client, catalog, django_assert_max_num_queries
):
    item = catalog["items"][0]
    url = reverse("admin:items_item_change", args=[item.pk])
    with django_assert_max_num_queries(MAX_CHANGE_PAGE_QUERIES):
        response = admin_client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert "rs-bar-chart" in html and "Interactions per day" in html
    similar = response.context["similar"]
    assert not similar.error
    assert similar.items and item.external_id not in similar.external_ids
    assert 'id="rs-similar-items"' in html


@pytest.mark.django_db
def test_editing_an_item_saves_fields_and_labels(admin_client, catalog):
    item = catalog["items"][0]
    url = reverse("admin:items_item_change", args=[item.pk])
    response = admin_client.post(
        url,
        {
            "title": "Renamed",
            "description": "",
            "categories": [catalog["films"].pk],
            "tags": [],
            "attributes": '{"price": 12}',
            "available_from_0": "",
            "available_from_1": "",
            "available_until_0": "",
            "available_until_1": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    item.refresh_from_db()
    assert item.title == "Renamed" and item.attributes == {"price": 12}
    assert list(item.categories.values_list("name", flat=True)) == ["films"]
    assert not item.tags.exists()


@pytest.mark.django_db
def test_category_and_tag_lists_count_items(admin_client, catalog):
    response = admin_client.get(reverse("admin:items_category_changelist"))
    counts = {c.name: c.item_count for c in response.context["cl"].result_list}
    assert counts == {"books": 6, "films": 6}
    autocomplete = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "items",
            "model_name": "item",
            "field_name": "tags",
            "term": "ne",
        },
    )
    assert [r["text"] for r in autocomplete.json()["results"]] == ["new"]


@pytest.mark.django_db
def test_adding_an_item_goes_through_the_item_service(admin_client, catalog):
    response = admin_client.post(
        reverse("admin:items_item_add"),
        {
            "external_id": "new-1",
            "title": "Brand new",
            "description": "",
            "categories": [catalog["books"].pk],
            "tags": [catalog["new"].pk],
            "attributes": "{}",
            "available_from_0": "",
            "available_from_1": "",
            "available_until_0": "",
            "available_until_1": "",
        },
    )
    assert response.status_code == 302
    item = Item.objects.get(external_id="new-1")
    assert list(item.categories.values_list("name", flat=True)) == ["books"]
    assert list(item.tags.values_list("name", flat=True)) == ["new"]
    # The id is the client's key: read-only once the item exists.
    page = admin_client.get(reverse("admin:items_item_change", args=[item.pk]))
    assert 'name="external_id"' not in page.content.decode()
