"""Every admin page staff use renders for a superuser."""

import pytest
from django.urls import reverse

from tests.factories import (
    BusinessRuleFactory,
    EndUserFactory,
    InteractionFactory,
    ItemFactory,
    ModelVersionFactory,
)


@pytest.mark.django_db
def test_every_page_renders(admin_client):
    item = ItemFactory(categories=["books"], tags=["new"])
    user = EndUserFactory()
    InteractionFactory(user=user, item=item)
    rule = BusinessRuleFactory(item=item)
    version = ModelVersionFactory(metrics={"ndcg_at_10": 0.2}, timings={"total": 3.0})
    urls = [
        reverse("admin:index"),
        reverse("admin:items_item_changelist"),
        reverse("admin:items_item_change", args=[item.pk]),
        reverse("admin:items_item_add"),
        reverse("admin:items_category_changelist"),
        reverse("admin:items_tag_changelist"),
        reverse("admin:users_enduser_changelist"),
        reverse("admin:users_enduser_change", args=[user.pk]),
        reverse("admin:users_apikey_changelist"),
        reverse("admin:users_apikey_add"),
        reverse("admin:recommendations_interaction_changelist"),
        reverse("admin:recommendations_interactiontype_changelist"),
        reverse("admin:recommendations_modelversion_changelist"),
        reverse("admin:recommendations_modelversion_change", args=[version.pk]),
        reverse("admin:recommendations_modelversion_train"),
        reverse("admin:recommendations_businessrule_changelist"),
        reverse("admin:recommendations_businessrule_add"),
        reverse("admin:recommendations_businessrule_change", args=[rule.pk]),
        reverse("admin:recommendations_importjob_changelist"),
        reverse("admin:django_celery_beat_periodictask_changelist"),
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
