"""The fast ingestion paths against the plain ORM path on the same input."""

import time
from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import transaction

from items.models import Item
from recommendations.models import Interaction, InteractionType
from recommendations.services.interactions import (
    ID_INVALID,
    interaction_copy_many,
    interaction_record_many,
    interaction_rows_clean,
)
from tests.factories import EndUserFactory, ItemFactory
from users.models import EndUser
from users.services import user_ensure_many

# Whole seconds: a float such as time.time() may round to different microseconds in
# PostgreSQL and in Python, which is no difference a client could notice.
NOW = float(int(time.time()))


def snapshot() -> list[tuple]:
    """What is stored, in the clients' terms (created_at aside)."""
    rows = Interaction.objects.values_list(
        "user__external_id",
        "item__external_id",
        "type__name",
        "value",
        "timestamp",
        "event_id",
        "recommendation_id",
    )
    return sorted(rows, key=repr)


def record_with_orm(rows) -> tuple[int, int]:
    """The obvious ORM implementation: one query (or three) per row."""
    valid, _ = interaction_rows_clean(rows, now=NOW)
    types = {t.name: t for t in InteractionType.objects.all()}
    accepted = duplicates = 0
    for row in valid:
        item = Item.objects.filter(external_id=row.item).first()
        if item is None or row.type not in types:
            continue
        user, _ = EndUser.objects.get_or_create(external_id=row.user)
        if row.event_id and Interaction.objects.filter(event_id=row.event_id).exists():
            duplicates += 1
            continue
        Interaction.objects.create(
            user=user,
            item=item,
            type=types[row.type],
            value=row.value,
            timestamp=datetime.fromtimestamp(row.timestamp, tz=UTC),
            event_id=row.event_id,
            recommendation_id=row.recommendation_id,
        )
        accepted += 1
    return accepted, duplicates


def in_rollback(fn):
    """Run `fn`, return its result and the stored state, then undo it."""
    with transaction.atomic():
        result = fn()
        state = (
            snapshot(),
            sorted(EndUser.objects.values_list("external_id", flat=True)),
        )
        transaction.set_rollback(True)
    return result, state


@pytest.mark.django_db
def test_record_many_stores_exactly_what_the_orm_path_stores():
    EndUserFactory(external_id="existing")
    for n in range(4):
        ItemFactory(external_id=f"i{n}")
    Interaction.objects.create(
        user=EndUser.objects.get(external_id="existing"),
        item=Item.objects.get(external_id="i0"),
        type=InteractionType.objects.get(name="view"),
        event_id="already-stored",
    )
    rows = [
        {
            "user": "existing",
            "item": "i0",
            "type": "view",
            "event_id": "already-stored",
        },
        {
            "user": "existing",
            "item": "i1",
            "type": "rating",
            "value": 3,
            "timestamp": 1714557600.25,
        },
        {
            "user": "new",
            "item": "i2",
            "type": "purchase",
            "timestamp": "2024-05-01T10:00:00.123456Z",
        },
        {
            "user": "new",
            "item": "i3",
            "type": "like",
            "event_id": "e1",
            "recommendation_id": "0b5e5c52-8c1e-4a47-9d55-0a0c8d3e8e11",
        },
        {"user": "new", "item": "i3", "type": "like", "event_id": "e1"},  # repeat
        {"user": "other", "item": "missing", "type": "view"},  # unknown item
        {"user": "other", "item": "i1", "type": "nope"},  # unknown type
        {
            "user": 17,
            "item": "i1",
            "type": "click",
            "value": -2.5,
            "timestamp": 1714557600,
        },
        {
            "user": "new",
            "item": "i1",
            "type": "view",
            "timestamp": "2030-01-01",
        },  # future
    ] + [
        {"user": f"bulk{k % 7}", "item": f"i{k % 4}", "type": "view"} for k in range(50)
    ]

    fast_result, fast_state = in_rollback(
        lambda: interaction_record_many(rows=rows, now=NOW)
    )
    orm_result, orm_state = in_rollback(lambda: record_with_orm(rows))

    assert (fast_result.accepted, fast_result.duplicates) == orm_result == (54, 2)
    assert [entry["index"] for entry in fast_result.rejected] == [5, 6, 8]
    assert fast_state == orm_state
    assert len(fast_state[0]) == 55


@pytest.mark.django_db
def test_copy_many_stores_exactly_what_the_orm_path_stores():
    users = [EndUserFactory() for _ in range(3)]
    items = [ItemFactory() for _ in range(4)]
    types = list(InteractionType.objects.order_by("id")[:3])
    rng = np.random.default_rng(0)
    n = 250
    user_pks = np.array([users[k].pk for k in rng.integers(0, 3, n)])
    item_pks = np.array([items[k].pk for k in rng.integers(0, 4, n)])
    type_pks = np.array([types[k].pk for k in rng.integers(0, 3, n)])
    values = np.where(rng.random(n) < 0.5, np.nan, rng.normal(0, 3, n)).astype(
        np.float32
    )
    stamps = 1.7e9 + np.round(rng.random(n) * 1e7, 6)

    def orm():
        Interaction.objects.bulk_create(
            Interaction(
                user_id=int(u),
                item_id=int(i),
                type_id=int(t),
                value=None if np.isnan(v) else float(v),
                timestamp=datetime.fromtimestamp(float(s), tz=UTC),
            )
            for u, i, t, v, s in zip(
                user_pks, item_pks, type_pks, values, stamps, strict=True
            )
        )

    progress = []
    written, copy_state = in_rollback(
        lambda: interaction_copy_many(
            user_pks=user_pks,
            item_pks=item_pks,
            type_pks=type_pks,
            values=values,
            timestamps=stamps,
            chunk_rows=100,
            progress=progress.append,
        )
    )
    _, orm_state = in_rollback(orm)
    assert written == n
    assert progress == [100, 100, 50]
    assert copy_state == orm_state
    assert len(copy_state[0]) == n


@pytest.mark.django_db
def test_user_ensure_many_creates_only_the_missing_users():
    existing = EndUserFactory(external_id="a", attributes={"age": 3})
    pks = user_ensure_many(external_ids=["a", "b", "c", "b"])
    assert pks["a"] == existing.pk
    assert set(pks) == {"a", "b", "c"}
    assert user_ensure_many(external_ids=["b", "c"]) == {"b": pks["b"], "c": pks["c"]}
    assert EndUser.objects.get(external_id="a").attributes == {"age": 3}
    assert EndUser.objects.get(external_id="b").attributes == {}


def test_text_postgres_cannot_store_is_rejected_before_the_database():
    rows = [
        {"user": "u\x00", "item": "i", "type": "view"},
        {"user": "u", "item": "\ud800", "type": "view"},
        {"user": "émile", "item": "i", "type": "view"},
    ]
    valid, rejected = interaction_rows_clean(rows, now=NOW)
    assert [row.user for row in valid] == ["émile"]
    assert rejected == [
        {"index": 0, "errors": {"user": [ID_INVALID]}},
        {"index": 1, "errors": {"item": [ID_INVALID]}},
    ]


AWKWARD_TEXT = [
    'quote"inside',
    "back\\slash",
    "trailing\\",
    "comma,separated",
    "{braces}",
    "NULL",
    "null",
    " spaced out ",
    "it's",
    "émile 東京 🎉",
    "'{\"a\",NULL}'",
]


@pytest.mark.django_db
def test_awkward_ids_and_numbers_round_trip_as_the_orm_path_stores_them():
    # The INSERT sends each column as one array literal: text that looks like array
    # syntax or NULL must still arrive as that exact text, numbers exactly.
    for name in AWKWARD_TEXT:
        ItemFactory(external_id=f"item {name}")
    rows = [
        {
            "user": f"user {name}",
            "item": f"item {name}",
            "type": "rating",
            "value": value,
            "timestamp": NOW - k * 0.5,
            "event_id": name,
        }
        for k, (name, value) in enumerate(
            zip(
                AWKWARD_TEXT,
                [0.1, 1e-300, -1.7976931348623157e308, 3, None, 2.5e-7, -0.0]
                + [1 / 3, 12345678.9, 7, None],
                strict=True,
            )
        )
    ]

    fast_result, fast_state = in_rollback(
        lambda: interaction_record_many(rows=rows, now=NOW)
    )
    orm_result, orm_state = in_rollback(lambda: record_with_orm(rows))

    assert not fast_result.rejected
    assert (fast_result.accepted, fast_result.duplicates) == orm_result == (11, 0)
    assert fast_state == orm_state
    assert sorted(row[5] for row in fast_state[0]) == sorted(AWKWARD_TEXT)


@pytest.mark.django_db
def test_a_batch_naming_many_items_finds_each_known_one():
    # More distinct items than the planner would probe one by one on a plain join.
    known = [f"item-{n:05d}" for n in range(0, 1600, 2)]
    Item.objects.bulk_create([Item(external_id=external_id) for external_id in known])
    rows = [
        {"user": f"u{n % 13}", "item": f"item-{n:05d}", "type": "view"}
        for n in range(1600)
    ]

    result = interaction_record_many(rows=rows, now=NOW)

    assert result.accepted == 800
    assert [entry["index"] for entry in result.rejected] == list(range(1, 1600, 2))
    assert sorted(
        Interaction.objects.values_list("item__external_id", flat=True)
    ) == sorted(known)
