"""Fixtures of the admin tests: a small catalog with a clear popularity order."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import (
    CategoryFactory,
    EndUserFactory,
    InteractionFactory,
    InteractionTypeFactory,
    ItemFactory,
    TagFactory,
)


@pytest.fixture(autouse=True)
def _fresh_serving():
    """Serving keeps per-process caches (model, rules, labels): start clean."""
    from recommendations import serving

    serving.serving_reset()
    yield
    serving.serving_reset()


@pytest.fixture
def catalog(db):
    """12 items in 2 categories, 6 users; item-0 is the most popular, item-1 next, …"""
    books, films = CategoryFactory(name="books"), CategoryFactory(name="films")
    new = TagFactory(name="new")
    view = InteractionTypeFactory(name="view", weight=1.0)
    items = [
        ItemFactory(
            external_id=f"item-{i}",
            title=f"Item number {i}",
            categories=[books if i % 2 == 0 else films],
            tags=[new] if i < 3 else [],
        )
        for i in range(12)
    ]
    users = [EndUserFactory(external_id=f"user-{u}") for u in range(6)]
    now = timezone.now()
    # Popularity falls with the index; user-5 has seen only item-11, so every
    # popular item is unseen for them.
    for index, item in enumerate(items[:8]):
        for user in users[: max(5 - index // 2, 1)]:
            InteractionFactory(
                user=user,
                item=item,
                type=view,
                timestamp=now - dt.timedelta(hours=index),
            )
    InteractionFactory(user=users[5], item=items[11], type=view, timestamp=now)
    return {"items": items, "users": users, "books": books, "films": films, "new": new}
