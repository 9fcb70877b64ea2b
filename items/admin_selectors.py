"""Reads for the admin's catalog pages (querysets with their joins applied)."""

import datetime as dt

from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from items.models import Category, Item, Tag
from recommendations.models import Interaction

ITEM_CHART_DAYS = 90


def item_admin_list() -> QuerySet[Item]:
    """Items with their interaction count; categories and tags prefetched (3 queries a page)."""
    per_item = (
        Interaction.objects.filter(item=OuterRef("pk"))
        .order_by()
        .values("item")
        .annotate(c=Count("id"))
        .values("c")
    )
    return Item.objects.annotate(
        interaction_count=Coalesce(Subquery(per_item, output_field=IntegerField()), 0)
    ).prefetch_related("categories", "tags")


def item_availability_q(state: str, *, now: dt.datetime) -> Q:
    """Filter for availability `now` (inside its window), `scheduled` (not yet) or `expired`."""
    if state == "now":
        return (Q(available_from__isnull=True) | Q(available_from__lte=now)) & (
            Q(available_until__isnull=True) | Q(available_until__gt=now)
        )
    if state == "scheduled":
        return Q(available_from__gt=now)
    if state == "expired":
        return Q(available_until__lte=now)
    raise ValueError(f"Unknown availability state {state!r}")


def item_has_interactions() -> Exists:
    """An EXISTS expression: the item has at least one interaction."""
    return Exists(Interaction.objects.filter(item=OuterRef("pk")))


def item_interactions_per_day(
    *, item: Item, days: int = ITEM_CHART_DAYS, now: dt.datetime | None = None
) -> list[tuple[dt.date, int]]:
    """(day, interactions) for the item over the last `days` days, zeros included."""
    tz = timezone.get_current_timezone()
    today = timezone.localtime(now or timezone.now(), tz).date()
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz)
    rows = (
        Interaction.objects.filter(item=item, timestamp__gte=start)
        .annotate(day=TruncDate("timestamp", tzinfo=tz))
        .values("day")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_day = {row["day"]: row["count"] for row in rows}
    return [
        (first + dt.timedelta(days=i), by_day.get(first + dt.timedelta(days=i), 0))
        for i in range(days)
    ]


def item_interaction_type_counts(*, item: Item) -> list[tuple[str, int]]:
    """How many interactions of each type the item has, most frequent first."""
    rows = (
        Interaction.objects.filter(item=item)
        .values_list("type__name")
        .annotate(count=Count("id"))
        .order_by("-count")
    )
    return [(name, count) for name, count in rows]


def category_admin_list() -> QuerySet[Category]:
    """Categories with the number of items in each."""
    return Category.objects.annotate(item_count=Count("items"))


def tag_admin_list() -> QuerySet[Tag]:
    """Tags with the number of items carrying each."""
    return Tag.objects.annotate(item_count=Count("items"))
