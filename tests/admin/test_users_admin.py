"""End-user pages ("preview as this user") and API keys (raw key shown once)."""

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from items.models import Item
from tests.factories import ApiKeyFactory, EndUserFactory, InteractionFactory
from users.authentication import hash_key
from users.models import ApiKey

MAX_USER_LIST_QUERIES = 10
MAX_USER_PAGE_QUERIES = 30


@pytest.mark.django_db
def test_user_page_shows_recent_interactions_and_recommendations(admin_client, catalog):
    user = catalog["users"][5]  # has seen item-11 only
    response = admin_client.get(reverse("admin:users_enduser_change", args=[user.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert [i.item.external_id for i in response.context["recent_interactions"]] == [
        "item-11"
    ]
    preview = response.context["preview"]
    assert not preview.error and preview.strategy
    assert preview.external_ids[0] == "item-0"  # the most popular, unseen
    assert "item-11" not in preview.external_ids  # seen items are left out by default
    assert 'id="rs-recommendations"' in html and "Item number 0" in html


@pytest.mark.django_db
def test_preview_takes_the_api_filters_as_get_parameters(admin_client, catalog):
    user = catalog["users"][5]
    url = reverse("admin:users_enduser_change", args=[user.pk])

    films = admin_client.get(url, {"category": "films", "n": "3"}).context["preview"]
    tagged = admin_client.get(url, {"tag": "new"}).context["preview"]
    excluded = admin_client.get(url, {"exclude": "item-0,item-1"}).context["preview"]
    seen = admin_client.get(url, {"include_seen": "on", "n": "20"}).context["preview"]
    capped = admin_client.get(url, {"max_per_category": "1"}).context["preview"]

    assert len(films.items) == 3
    assert all(int(x.split("-")[1]) % 2 == 1 for x in films.external_ids)
    assert set(tagged.external_ids) <= {"item-0", "item-1", "item-2"}
    assert not {"item-0", "item-1"} & set(excluded.external_ids)
    assert "item-11" in seen.external_ids
    assert len(capped.items) == 2  # one per category, two categories


@pytest.mark.django_db
def test_bad_preview_parameters_show_errors_not_a_500(admin_client, catalog):
    user = catalog["users"][0]
    response = admin_client.get(
        reverse("admin:users_enduser_change", args=[user.pk]), {"n": "0", "tag": "nope"}
    )
    assert response.status_code == 200
    assert "No tag named" in response.content.decode()


@pytest.mark.django_db
def test_hidden_item_disappears_from_the_user_page(admin_client, catalog):
    user = catalog["users"][5]
    url = reverse("admin:users_enduser_change", args=[user.pk])
    assert "item-0" in admin_client.get(url).context["preview"].external_ids

    admin_client.post(
        reverse("admin:items_item_changelist"),
        {"action": "hide", helpers.ACTION_CHECKBOX_NAME: [catalog["items"][0].pk]},
    )

    assert Item.objects.get(external_id="item-0").is_hidden
    assert "item-0" not in admin_client.get(url).context["preview"].external_ids


@pytest.mark.django_db
def test_user_list_and_page_query_counts(
    admin_client, catalog, django_assert_max_num_queries
):
    for _ in range(30):
        InteractionFactory(user=EndUserFactory(), item=catalog["items"][3])
    with django_assert_max_num_queries(MAX_USER_LIST_QUERIES):
        response = admin_client.get(reverse("admin:users_enduser_changelist"))
    assert response.status_code == 200
    counts = {
        u.external_id: u.interaction_count for u in response.context["cl"].result_list
    }
    assert counts["user-0"] == 8 and counts["user-5"] == 1
    with django_assert_max_num_queries(MAX_USER_PAGE_QUERIES):
        response = admin_client.get(
            reverse("admin:users_enduser_change", args=[catalog["users"][0].pk])
        )
    assert response.status_code == 200


@pytest.mark.django_db
def test_api_key_raw_value_is_shown_once_and_stored_hashed(admin_client, admin_user):
    response = admin_client.post(
        reverse("admin:users_apikey_add"), {"name": "shop frontend", "kind": "public"}
    )

    assert response.status_code == 200
    raw_key = response.context["raw_key"]
    assert raw_key in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(name="shop frontend")
    assert key.kind == "public" and key.created_by == admin_user
    assert key.hashed_key == hash_key(raw_key) and raw_key not in key.hashed_key
    # The key works, and no later page shows it again.
    api = admin_client.get(reverse("health"), HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert api.status_code == 200
    for url in (
        reverse("admin:users_apikey_changelist"),
        reverse("admin:users_apikey_change", args=[key.pk]),
    ):
        page = admin_client.get(url).content.decode()
        assert raw_key not in page and key.prefix in page


@pytest.mark.django_db
def test_revoke_action_deactivates_keys(admin_client):
    keys = [ApiKeyFactory(), ApiKeyFactory()]
    other = ApiKeyFactory()

    response = admin_client.post(
        reverse("admin:users_apikey_changelist"),
        {"action": "revoke", helpers.ACTION_CHECKBOX_NAME: [k.pk for k in keys]},
        follow=True,
    )

    assert "Revoked 2 API key(s)." in response.content.decode()
    assert not ApiKey.objects.filter(
        pk__in=[k.pk for k in keys], is_active=True
    ).exists()
    other.refresh_from_db()
    assert other.is_active
    listing = admin_client.get(
        reverse("admin:users_apikey_changelist")
    ).content.decode()
    assert "rs-badge-revoked" in listing and "rs-badge-active" in listing


@pytest.mark.django_db
def test_interaction_and_type_lists(
    admin_client, catalog, django_assert_max_num_queries
):
    for _ in range(30):
        InteractionFactory(user=catalog["users"][0], item=catalog["items"][5])
    with django_assert_max_num_queries(MAX_USER_LIST_QUERIES):
        response = admin_client.get(
            reverse("admin:recommendations_interaction_changelist"),
            {"q": "user-0"},
        )
    assert response.status_code == 200
    assert {i.user.external_id for i in response.context["cl"].result_list} == {
        "user-0"
    }

    view = catalog["items"][0].interactions.first().type
    types = reverse("admin:recommendations_interactiontype_changelist")
    response = admin_client.post(
        types,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": view.pk,
            "form-0-weight": "2.5",
            "form-0-is_positive": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    view.refresh_from_db()
    assert view.weight == 2.5
