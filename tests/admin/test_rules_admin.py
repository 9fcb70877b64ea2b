"""Business rules in the admin: preview before saving, save through the service."""

import pytest
from django.urls import reverse

from recommendations.models import BusinessRule
from tests.factories import BusinessRuleFactory

PREVIEW = "admin:recommendations_businessrule_preview"
MAX_RULE_LIST_QUERIES = 10


def _rule_form(**fields) -> dict:
    data = {
        "name": "",
        "action": "block",
        "is_active": "on",
        "target": "item",
        "item": "",
        "category": "",
        "tag": "",
        "position": "",
        "factor": "",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "preview_users": "user-5, user-4",  # user-4 has seen item-0 to item-7
    }
    data.update({k: str(v) for k, v in fields.items()})
    return data


@pytest.mark.django_db
def test_preview_of_a_block_rule_shows_before_and_after_without_saving(
    admin_client, catalog
):
    item0 = catalog["items"][0]

    response = admin_client.post(reverse(PREVIEW), _rule_form(item=item0.pk))

    assert response.status_code == 200
    preview = response.context["preview"]
    assert [row.user_external_id for row in preview.users] == ["user-5", "user-4"]
    fresh, seen_all = preview.users
    assert "item-0" in fresh.before.external_ids
    assert "item-0" not in fresh.after.external_ids
    removed = [r for r in fresh.before_rows if r["css"] == "rs-removed"]
    assert [r["external_id"] for r in removed] == ["item-0"]
    assert fresh.changed >= 1
    assert seen_all.before.external_ids == seen_all.after.external_ids  # never had it
    assert seen_all.changed == 0
    assert "block item" in preview.description
    assert not BusinessRule.objects.exists()
    assert "<html" in response.content.decode()


@pytest.mark.django_db
def test_preview_of_a_pin_rule_as_a_fragment(admin_client, catalog):
    cold = catalog["items"][9]  # no interactions: at the end of the popular list

    response = admin_client.post(
        reverse(PREVIEW) + "?fragment=1",
        _rule_form(action="pin", item=cold.pk, position=1, preview_users="user-5"),
    )

    html = response.content.decode()
    row = response.context["preview"].users[0]
    assert row.after.external_ids[0] == "item-9"
    assert row.before.external_ids[0] == "item-0"
    assert row.after_rows[0]["css"] in {"rs-added", "rs-moved-up"}
    assert "<html" not in html and 'class="rs-after"' in html


@pytest.mark.django_db
def test_preview_of_an_invalid_rule_lists_the_errors(admin_client, catalog):
    response = admin_client.post(
        reverse(PREVIEW) + "?fragment=1",
        _rule_form(action="pin", item=catalog["items"][0].pk, position=""),
    )
    assert response.status_code == 200
    assert "preview" not in response.context
    assert "The rule is not valid yet" in response.content.decode()


@pytest.mark.django_db
def test_preview_of_an_edit_replaces_the_saved_rule(admin_client, catalog):
    saved = BusinessRuleFactory(action="block", target="item", item=catalog["items"][0])

    response = admin_client.post(
        reverse(PREVIEW),
        {**_rule_form(item=catalog["items"][1].pk), "_preview_rule_pk": saved.pk},
    )

    row = response.context["preview"].users[0]
    assert "item-0" not in row.before.external_ids  # the saved rule is live
    assert "item-0" in row.after.external_ids  # ... and replaced by the edit
    assert (
        "item-1" in row.before.external_ids and "item-1" not in row.after.external_ids
    )
    saved.refresh_from_db()
    assert saved.item == catalog["items"][0]


@pytest.mark.django_db
def test_the_add_form_has_a_preview_button_and_saving_applies_the_rule(
    admin_client, catalog
):
    add_url = reverse("admin:recommendations_businessrule_add")
    page = admin_client.get(add_url).content.decode()
    assert 'id="rs-preview-button"' in page and reverse(PREVIEW) in page

    response = admin_client.post(add_url, _rule_form(item=catalog["items"][0].pk))

    assert response.status_code == 302
    rule = BusinessRule.objects.get()
    assert (rule.action, rule.item.external_id) == ("block", "item-0")
    user_page = admin_client.get(
        reverse("admin:users_enduser_change", args=[catalog["users"][5].pk])
    )
    assert "item-0" not in user_page.context["preview"].external_ids


@pytest.mark.django_db
def test_rule_list_query_count(admin_client, catalog, django_assert_max_num_queries):
    for item in catalog["items"]:
        BusinessRuleFactory(action="boost", factor=2, target="item", item=item)
    BusinessRuleFactory(
        action="block", target="category", item=None, category=catalog["books"]
    )
    with django_assert_max_num_queries(MAX_RULE_LIST_QUERIES):
        response = admin_client.get(
            reverse("admin:recommendations_businessrule_changelist")
        )
    assert response.status_code == 200
    assert "rs-badge-boost" in response.content.decode()
