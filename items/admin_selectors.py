"""Reads for the admin's catalog pages (querysets with their joins applied)."""

import datetime as dt

from django.db.models import (
    Count,
    Exists,
    IntegerField,
    Max,
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
    """Items with their interaction count; labels prefetched (3 queries a page)."""
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
    """Items available `now` (in their window), `scheduled` (not yet) or `expired`."""
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
    *, item: Item, end: dt.datetime, days: int = ITEM_CHART_DAYS
) -> list[tuple[dt.date, int]]:
    """(day, interactions) of the item, `days` days up to `end`, zeros included."""
    tz = timezone.get_current_timezone()
    last = timezone.localtime(end, tz).date()
    first = last - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz)
    stop = timezone.make_aware(
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min), tz
    )
    rows = (
        Interaction.objects.filter(item=item, timestamp__gte=start, timestamp__lt=stop)
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


def item_interaction_summary(*, item: Item) -> dict:
    """Interactions of the item per type (most frequent first) and its latest one."""
    rows = list(
        Interaction.objects.filter(item=item)
        .values_list("type__name")
        .annotate(count=Count("id"), latest=Max("timestamp"))
        .order_by("-count")
    )
    return {
        "by_type": [(name, count) for name, count, _ in rows],
        "latest": max((latest for _, _, latest in rows), default=None),
    }


def category_admin_list() -> QuerySet[Category]:
    """Categories with the number of items in each."""
    return Category.objects.annotate(item_count=Count("items"))


def tag_admin_list() -> QuerySet[Tag]:
    """Tags with the number of items carrying each."""
    return Tag.objects.annotate(item_count=Count("items"))
