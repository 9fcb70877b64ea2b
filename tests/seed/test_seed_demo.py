import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from items.models import Item
from recommendations.engine.synthetic import generate
from recommendations.models import Interaction
from recommendations.services.demo import DemoDataError, demo_data_load
from users.models import EndUser


def seed(*extra: str) -> str:
    out = io.StringIO()
    call_command(
        "seed_demo",
        "--users",
        "40",
        "--items",
        "60",
        "--interactions",
        "600",
        "--seed",
        "3",
        *extra,
        stdout=out,
        stderr=io.StringIO(),
    )
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_writes_a_labelled_catalog_and_varied_interactions():
    output = seed()
    assert "Loaded 40 users, 60 items and 600 interactions" in output
    assert EndUser.objects.count() == 40
    assert Item.objects.count() == 60
    assert Interaction.objects.count() == 600
    labelled = Item.objects.annotate(
        c=Count("categories", distinct=True), t=Count("tags", distinct=True)
    )
    assert all(item.c >= 1 and item.t >= 1 for item in labelled)
    assert Item.objects.exclude(title="").count() == 60
    types = set(Interaction.objects.values_list("type__name", flat=True))
    assert len(types) >= 4
    assert Interaction.objects.filter(type__name="rating", value__isnull=False).exists()
    assert EndUser.objects.exclude(attributes={}).count() == 40
    # Interactions are spread over many users and items, as generated.
    assert Interaction.objects.values("user").distinct().count() == 40
    assert Interaction.objects.values("item").distinct().count() > 20


@pytest.mark.django_db
def test_a_second_run_is_refused_unless_replace():
    seed()
    with pytest.raises(CommandError, match="already have interactions"):
        seed()
    assert Interaction.objects.count() == 600
    assert "replaced 600" in seed("--replace")
    assert Interaction.objects.count() == 600


@pytest.mark.django_db
def test_demo_data_load_matches_the_generated_log():
    log = generate(n_users=15, n_items=25, n_interactions=200, seed=9)
    result = demo_data_load(log=log, chunk_rows=64)
    assert (result.users, result.items, result.interactions) == (15, 25, 200)
    stored = sorted(
        Interaction.objects.values_list(
            "user__external_id", "item__external_id", "type__name"
        )
    )
    expected = sorted(
        (log.users[u]["id"], log.items[i]["id"], log.type_names[t])
        for u, i, t in zip(log.user_index, log.item_index, log.type_index, strict=True)
    )
    assert stored == expected
    ratings = Interaction.objects.filter(value__isnull=False).count()
    assert ratings == int(np.isfinite(log.value).sum())
    with pytest.raises(DemoDataError):
        demo_data_load(log=log)
