"""Reads on the serving path: few, indexed, and without ORM objects per row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Q

from items.models import Category, Item, Tag
from recommendations.models import Interaction, InteractionType, ModelVersion
from users.models import EndUser


@dataclass(frozen=True)
class ItemRow:
    """What a response shows about an item, plus whether it may be shown now."""

    pk: int
    external_id: str
    title: str
    visible: bool
    categories: tuple[str, ...]
    tags: tuple[str, ...]


def _tables() -> dict[str, str]:
    return {
        "item": Item._meta.db_table,
        "item_cat": Item.categories.through._meta.db_table,
        "item_tag": Item.tags.through._meta.db_table,
        "cat": Category._meta.db_table,
        "tag": Tag._meta.db_table,
        "interaction": Interaction._meta.db_table,
        "itype": InteractionType._meta.db_table,
    }


def active_model_version_row() -> tuple[int, str] | None:
    """(id, artifact_path) of the active version: one query on an indexed column."""
    return (
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
        .values_list("id", "artifact_path")
        .first()
    )


def end_user_row(external_id: str) -> tuple[int, dict] | None:
    """(pk, attributes) of a user by the client's id."""
    return (
        EndUser.objects.filter(external_id=external_id)
        .values_list("id", "attributes")
        .first()
    )


def end_user_with_history(
    external_id: str, *, limit: int
) -> tuple[int, dict, list[int], list[int], list[float]] | None:
    """(pk, attributes, item pks, type pks, unix times) of a user's newest interactions.

    One round trip: the history comes from the (user, -timestamp) index.
    """
    user = EndUser._meta.db_table
    t = _tables()
    newest = (
        f"FROM {t['interaction']} x WHERE x.user_id = u.id "
        f"ORDER BY x.timestamp DESC, x.id DESC LIMIT %s"
    )
    sql = (
        f"SELECT u.id, u.attributes, "
        f"ARRAY(SELECT x.item_id {newest}), "
        f"ARRAY(SELECT x.type_id {newest}), "
        f"ARRAY(SELECT extract(epoch FROM x.timestamp)::float8 {newest}) "
        f"FROM {user} u WHERE u.external_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [int(limit), int(limit), int(limit), external_id])
        row = cursor.fetchone()
    if row is None:
        return None
    attributes = row[1]
    if isinstance(attributes, (str, bytes)):
        attributes = json.loads(attributes)
    return row[0], attributes or {}, list(row[2]), list(row[3]), list(row[4])


def user_recent_interactions(
    user_pk: int, *, limit: int
) -> list[tuple[int, int, float]]:
    """(item pk, type pk, unix time) of the user's latest interactions, newest first."""
    # order_by matches the (user, -timestamp) index so this is an index scan.
    rows = (
        Interaction.objects.filter(user_id=user_pk)
        .order_by("-timestamp", "-id")
        .values_list("item_id", "type_id", "timestamp")[:limit]
    )
    return [(item, kind, when.timestamp()) for item, kind, when in rows]


def interaction_type_weights() -> dict[int, float]:
    """Signed weight per interaction type pk (negative types push away)."""
    return {
        pk: (weight if positive else -weight)
        for pk, weight, positive in InteractionType.objects.values_list(
            "id", "weight", "is_positive"
        )
    }


def item_pk_by_external_id(external_id: str) -> int | None:
    """The pk of an item, or None."""
    return (
        Item.objects.filter(external_id=external_id)
        .values_list("id", flat=True)
        .first()
    )


def item_pks_by_external_ids(external_ids: list[str]) -> dict[str, int]:
    """external id -> pk for the ids that exist."""
    if not external_ids:
        return {}
    return dict(
        Item.objects.filter(external_id__in=external_ids).values_list(
            "external_id", "id"
        )
    )


def item_rows(pks: list[int], *, now: datetime) -> dict[int, ItemRow]:
    """Titles, labels and current visibility in one query (hiding is instant)."""
    if not pks:
        return {}
    t = _tables()
    sql = (
        f"SELECT i.id, i.external_id, i.title, "
        f"(NOT i.is_hidden AND (i.available_from IS NULL OR i.available_from <= %s) "
        f"AND (i.available_until IS NULL OR i.available_until > %s)), "
        f"ARRAY(SELECT c.name FROM {t['item_cat']} ic JOIN {t['cat']} c "
        f"ON c.id = ic.category_id WHERE ic.item_id = i.id ORDER BY c.name), "
        f"ARRAY(SELECT g.name FROM {t['item_tag']} it JOIN {t['tag']} g "
        f"ON g.id = it.tag_id WHERE it.item_id = i.id ORDER BY g.name) "
        f"FROM {t['item']} i WHERE i.id = ANY(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, [int(pk) for pk in pks]])
        rows = cursor.fetchall()
    return {
        r[0]: ItemRow(
            pk=r[0],
            external_id=r[1],
            title=r[2] or "",
            visible=bool(r[3]),
            categories=tuple(r[4]),
            tags=tuple(r[5]),
        )
        for r in rows
    }


def item_pks_with_label(
    *, category: str | None = None, tag: str | None = None
) -> np.ndarray:
    """Pks of items in a category and/or with a tag (sorted int64)."""
    qs = Item.objects.all()
    if category is not None:
        qs = qs.filter(categories__name=category)
    if tag is not None:
        qs = qs.filter(tags__name=tag)
    return np.unique(np.fromiter(qs.values_list("id", flat=True), dtype=np.int64))


def unavailable_item_pks(*, now: datetime) -> np.ndarray:
    """Hidden items and items outside their availability window (sorted int64)."""
    qs = Item.objects.filter(
        Q(is_hidden=True) | Q(available_from__gt=now) | Q(available_until__lte=now)
    )
    return np.unique(np.fromiter(qs.values_list("id", flat=True), dtype=np.int64))


def popular_item_scores(
    *,
    limit: int,
    now: datetime,
    window: timedelta | None = None,
    trending: bool = False,
    category: str | None = None,
    tag: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(pks, scores) by positive interactions (time-decayed when trending), best first.

    Trending: each interaction counts 2^(-age / half_life), half_life = window / 7
    (one day for the default 7-day window).
    """
    t = _tables()
    where = ["t.is_positive", "t.weight > 0"]
    params: list = []
    if trending and window is None:
        window = timedelta(days=7)
    if window is not None:
        where.append("x.timestamp >= %s")
        params.append(now - window)
    if category is not None:
        where.append(
            f"x.item_id IN (SELECT ic.item_id FROM {t['item_cat']} ic "
            f"JOIN {t['cat']} c "
            f"ON c.id = ic.category_id WHERE c.name = %s)"
        )
        params.append(category)
    if tag is not None:
        where.append(
            f"x.item_id IN (SELECT it.item_id FROM {t['item_tag']} it "
            f"JOIN {t['tag']} g "
            f"ON g.id = it.tag_id WHERE g.name = %s)"
        )
        params.append(tag)
    if trending:
        half_life = max(window.total_seconds() / 7.0, 1.0)
        score = "sum(power(2.0, -extract(epoch FROM (%s - x.timestamp)) / %s))"
        score_params = [now, half_life]
    else:
        score = "count(*)"
        score_params = []
    sql = (
        f"SELECT x.item_id, {score}::float8 AS score FROM {t['interaction']} x "
        f"JOIN {t['itype']} t ON t.id = x.type_id WHERE {' AND '.join(where)} "
        f"GROUP BY x.item_id ORDER BY score DESC, x.item_id LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, score_params + params + [int(limit)])
        rows = cursor.fetchall()
    pks = np.array([r[0] for r in rows], dtype=np.int64)
    scores = np.array([r[1] for r in rows], dtype=np.float32)
    return pks, scores


def newest_item_pks(
    *, limit: int, category: str | None = None, tag: str | None = None
) -> np.ndarray:
    """The most recently created items (pads popularity on a fresh install)."""
    qs = Item.objects.order_by("-id")
    if category is not None:
        qs = qs.filter(categories__name=category)
    if tag is not None:
        qs = qs.filter(tags__name=tag)
    return np.fromiter(qs.values_list("id", flat=True)[:limit], dtype=np.int64)


def items_changed_since(
    *, min_pk_exclusive: int, since: datetime | None, limit: int
) -> list[int]:
    """Pks above `min_pk_exclusive` created/updated since `since` (overlay refresh)."""
    qs = Item.objects.filter(id__gt=min_pk_exclusive)
    if since is not None:
        qs = qs.filter(updated_at__gte=since)
    return list(qs.order_by("id").values_list("id", flat=True)[:limit])
