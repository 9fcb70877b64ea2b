"""Business rules, hiding and availability from the current database state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from items.models import Category, Item, Tag
from recommendations import serving
from recommendations.models import BusinessRule
from recommendations.services.rules import (
    business_rule_create,
    business_rule_delete,
    business_rule_update,
)

pytestmark = pytest.mark.django_db

USER = "user-000004"
POPULAR_URL = "/api/v1/recommendations/popular/"
SESSION_URL = "/api/v1/recommendations/session/"


def _user_url(user_id: str = USER) -> str:
    return reverse("user-recommendations-list", kwargs={"user_id": user_id})


def _similar_url(item_id: str) -> str:
    return reverse("item-similar-list", kwargs={"item_id": item_id})


def _ids(client, url, params=None) -> list[str]:
    response = client.get(url, params or {})
    assert response.status_code == 200, response.content
    return [i["id"] for i in response.json()["items"]]


def _all_lists(client, item_id: str) -> list[list[str]]:
    """Every endpoint's list (large n), to check that an item never shows up."""
    session = client.post(
        SESSION_URL, {"items": ["item-000009"], "n": 100}, format="json"
    ).json()
    return [
        _ids(client, _user_url(), {"n": 100}),
        _ids(client, _user_url("unknown-user"), {"n": 100}),
        _ids(client, POPULAR_URL, {"n": 100}),
        _ids(client, _similar_url("item-000009"), {"n": 100}),
        [i["id"] for i in session["items"]],
    ]


def test_hiding_takes_effect_at_once_on_every_endpoint(trained, api_client):
    top = _ids(api_client, POPULAR_URL)[0]
    assert any(top in ids for ids in _all_lists(api_client, top))
    Item.objects.filter(external_id=top).update(is_hidden=True)
    assert not any(top in ids for ids in _all_lists(api_client, top))


def test_hidden_items_are_never_returned_without_a_model(loaded, api_client):
    top = _ids(api_client, POPULAR_URL)[0]
    Item.objects.filter(external_id=top).update(is_hidden=True)
    assert top not in _ids(api_client, POPULAR_URL, {"n": 100})
    assert top not in _ids(api_client, _user_url(), {"n": 100})


def test_items_outside_their_availability_window_are_not_returned(trained, api_client):
    first, second = _ids(api_client, POPULAR_URL)[:2]
    now = timezone.now()
    Item.objects.filter(external_id=first).update(
        available_from=now + timedelta(days=1)
    )
    Item.objects.filter(external_id=second).update(
        available_until=now - timedelta(days=1)
    )
    ids = _ids(api_client, POPULAR_URL, {"n": 100})
    assert first not in ids and second not in ids
    Item.objects.filter(external_id=first).update(
        available_from=now - timedelta(days=1), available_until=now + timedelta(days=1)
    )
    assert first in _ids(api_client, POPULAR_URL, {"n": 100})


def test_pin_puts_an_item_at_its_position_on_every_list(trained, api_client):
    pinned = "item-000111"
    item = Item.objects.get(external_id=pinned)
    business_rule_create(action="pin", target="item", item=item, position=3)
    assert _ids(api_client, _user_url())[2] == pinned
    assert _ids(api_client, POPULAR_URL)[2] == pinned
    assert _ids(api_client, _similar_url("item-000009"))[2] == pinned
    # Paging: position 3 is on the first page only.
    assert pinned not in _ids(api_client, _user_url(), {"offset": 10})


def test_boost_moves_an_item_up_and_block_removes_it(trained, api_client):
    ids = _ids(api_client, POPULAR_URL, {"n": 20})
    target = Item.objects.get(external_id=ids[9])
    rule = business_rule_create(action="boost", target="item", item=target, factor=100)
    boosted = _ids(api_client, POPULAR_URL, {"n": 20})
    assert boosted.index(target.external_id) < 9
    business_rule_update(rule=rule, action="block", factor=None)
    assert target.external_id not in _ids(api_client, POPULAR_URL, {"n": 100})
    business_rule_delete(rule=rule)
    assert target.external_id in _ids(api_client, POPULAR_URL, {"n": 20})


def test_block_by_category_and_by_tag(trained, api_client):
    log = trained["log"]
    category = Category.objects.get(name=log.items[0]["categories"][0])
    business_rule_create(action="block", target="category", category=category)
    for ids in (
        _ids(api_client, _user_url(), {"n": 50}),
        _ids(api_client, POPULAR_URL, {"n": 50}),
    ):
        cats = Item.objects.filter(external_id__in=ids, categories=category)
        assert ids and not cats.exists()
    tag = Tag.objects.get(name=log.items[1]["tags"][0])
    business_rule_create(action="block", target="tag", tag=tag)
    ids = _ids(api_client, _user_url(), {"n": 50})
    assert not Item.objects.filter(external_id__in=ids, tags=tag).exists()


def test_a_rule_outside_its_time_window_does_nothing(trained, api_client):
    top = _ids(api_client, POPULAR_URL)[0]
    item = Item.objects.get(external_id=top)
    now = timezone.now()
    business_rule_create(
        action="block", target="item", item=item, starts_at=now + timedelta(hours=1)
    )
    business_rule_create(
        action="block", target="item", item=item, ends_at=now - timedelta(hours=1)
    )
    business_rule_create(action="block", target="item", item=item, is_active=False)
    assert _ids(api_client, POPULAR_URL)[0] == top
    business_rule_create(
        action="block",
        target="item",
        item=item,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    assert top not in _ids(api_client, POPULAR_URL, {"n": 100})


def test_rules_written_without_the_services_still_apply(trained, api_client):
    # An admin bulk edit or a raw ORM write: the table signature check catches it.
    top = _ids(api_client, POPULAR_URL)[0]
    rule = BusinessRule.objects.create(
        action="block", target="item", item=Item.objects.get(external_id=top)
    )
    assert top not in _ids(api_client, POPULAR_URL)
    rule.delete()
    assert _ids(api_client, POPULAR_URL)[0] == top


def test_a_rare_category_filter_still_fills_the_list(trained, api_client):
    rare = Category.objects.create(name="rare")
    items = list(Item.objects.order_by("-id")[:12])
    for item in items:
        item.categories.add(rare)
    ids = _ids(api_client, _user_url(), {"n": 10, "category": "rare"})
    assert len(ids) == 10 and set(ids) <= {i.external_id for i in items}


def test_preview_with_an_unsaved_rule_and_an_ignored_saved_one(trained):
    top = serving.popular_items(n=1).items[0]
    saved = business_rule_create(
        action="block", target="item", item=Item.objects.get(pk=top.pk)
    )
    assert top.id not in [i.id for i in serving.popular_items(n=20).items]
    preview = serving.recommend_for_user(
        user_external_id="unknown-user",
        ignore_rule_ids=[saved.pk],
        extra_rules=[
            BusinessRule(action="pin", target="item", item_id=top.pk, position=2)
        ],
    )
    assert preview.items[1].id == top.id and preview.items[1].pk == top.pk


def test_edited_titles_and_categories_show_in_the_next_response(trained, api_client):
    """Serving caches item rows per process; an edit must still show at once."""
    url = _similar_url("item-000009")
    first = api_client.get(url).json()["items"][0]
    response = api_client.patch(
        f"/api/v1/items/{first['id']}/",
        {"title": "Renamed just now", "categories": ["fresh-category"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    again = {i["id"]: i for i in api_client.get(url).json()["items"]}
    assert again[first["id"]]["title"] == "Renamed just now"
    assert again[first["id"]]["categories"] == ["fresh-category"]
    # The same through the service layer the admin uses.
    from items.services import item_update

    item_update(item=Item.objects.get(external_id=first["id"]), title="Edited in admin")
    again = {i["id"]: i for i in api_client.get(url).json()["items"]}
    assert again[first["id"]]["title"] == "Edited in admin"
