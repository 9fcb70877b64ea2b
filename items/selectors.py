"""Reads of the item catalog."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import Model, OuterRef, Q, QuerySet
from django.utils import timezone

from items.models import Category, Item, Tag
from recsite.lookups import pks_by_external_id
from users.selectors import attribute_filter_q


def _with_labels(items: QuerySet[Item]) -> QuerySet[Item]:
    """The items with `category_names` and `tag_names` (alphabetical lists), read
    by array subqueries in the items' own query. Two prefetches cost GET item two
    more round trips and ORM compilations: 4 queries and 8.2 ms of web CPU against
    4.3 ms for GET user (docs/benchmarks.md, section 5, in-process costs)."""
    return items.annotate(
        category_names=_names(Category),
        tag_names=_names(Tag),
    )


def _names(label: type[Category] | type[Tag]) -> ArraySubquery:
    return ArraySubquery(
        label.objects.filter(items=OuterRef("pk")).order_by("name").values("name")
    )


def item_list(
    *,
    id_prefix: str | None = None,
    category: str | None = None,
    tag: str | None = None,
    hidden: bool | None = None,
    search: str | None = None,
    available_now: bool | None = None,
    created_after: datetime | None = None,
    attributes: Iterable[tuple[str, str]] = (),
) -> QuerySet[Item]:
    """Items matching the filters with their labels prefetched, oldest first."""
    items = Item.objects.all()
    if id_prefix:
        items = items.filter(external_id__startswith=id_prefix)
    if category:
        items = items.filter(categories__name=category)
    if tag:
        items = items.filter(tags__name=tag)
    if hidden is not None:
        items = items.filter(is_hidden=hidden)
    if search:
        items = items.filter(title__icontains=search)
    if available_now is not None:
        window = available_q(now=timezone.now())
        items = items.filter(window) if available_now else items.exclude(window)
    if created_after is not None:
        items = items.filter(created_at__gt=created_after)
    for key, value in attributes:
        items = items.filter(attribute_filter_q("attributes", key, value))
    return _with_labels(items.order_by("id"))


def available_q(*, now: datetime) -> Q:
    """Items inside their availability window at `now` (open ends always match)."""
    return (Q(available_from__isnull=True) | Q(available_from__lte=now)) & (
        Q(available_until__isnull=True) | Q(available_until__gt=now)
    )


def item_get(*, external_id: str) -> Item | None:
    """The item with this client id and its labels, or None."""
    return _with_labels(Item.objects.filter(external_id=external_id)).first()


def item_pks_by_external_id(*, external_ids: Iterable[str]) -> dict[str, int]:
    """`{external_id: pk}` of the existing items among these ids (one query)."""
    return pks_by_external_id(Item, external_ids)


def item_windows_by_external_id(*, external_ids: Iterable[str]) -> dict[str, dict]:
    """`{external_id: {pk, available_from, available_until}}` of existing items."""
    ids = list(external_ids)
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.external_id, t.id, t.available_from, t.available_until "
            "FROM unnest(%s::varchar[]) AS wanted(key) "
            f"JOIN {Item._meta.db_table} AS t ON t.external_id = wanted.key",
            [ids],
        )
        return {
            row[0]: {"pk": row[1], "available_from": row[2], "available_until": row[3]}
            for row in cursor.fetchall()
        }


def label_pks_by_name(*, model: type[Model], names: Iterable[str]) -> dict[str, int]:
    """`{name: pk}` of the existing Category (or Tag) rows among these names."""
    wanted = list(names)
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.name, t.id FROM unnest(%s::varchar[]) AS wanted(key) "
            f"JOIN {model._meta.db_table} AS t ON t.name = wanted.key",
            [wanted],
        )
        return dict(cursor.fetchall())
