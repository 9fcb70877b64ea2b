"""Reads on the serving path: few, indexed, and without ORM objects per row."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Q

from items.models import MAYBE_UNAVAILABLE, Category, Item, Tag
from recommendations.models import Interaction, InteractionType, ModelVersion
from recommendations.selectors.rules import RULES_SIGNATURE_SQL
from recsite.lookups import fetch_prepared as _fetch_prepared
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


# May item `i` be shown at $1 (a timestamptz parameter)?
_VISIBLE_SQL = (
    "(NOT i.is_hidden AND (i.available_from IS NULL OR i.available_from <= $1) "
    "AND (i.available_until IS NULL OR i.available_until > $1))"
)

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
) -> tuple[str, tuple[int, dict, list[int], list[int], list[float]] | None]:
    """(rules signature, user) where user is (pk, attributes, item pks, type pks,
    unix times) of the user's newest interactions, or None for an unknown id.

    One round trip: the history comes from the (user, -timestamp) index, and the
    signature of the active business rules (`rules.RULES_SIGNATURE_SQL`) rides along.
    """
    user = EndUser._meta.db_table
    t = _tables()
    # One index scan of the newest rows, aggregated into three arrays.
    order = "ORDER BY x.timestamp DESC, x.id DESC"
    sql = (
        f"SELECT s.signature, u.id, u.attributes, h.items, h.kinds, h.times "
        f"FROM ({RULES_SIGNATURE_SQL}) s "
        f"LEFT JOIN {user} u ON u.external_id = $1 "
        f"LEFT JOIN LATERAL (SELECT coalesce(array_agg(x.item_id {order}), '{{}}') "
        f"AS items, coalesce(array_agg(x.type_id {order}), '{{}}') AS kinds, "
        f"coalesce(array_agg(x.ts {order}), '{{}}') AS times FROM ("
        f"SELECT x.id, x.item_id, x.type_id, x.timestamp, "
        f"extract(epoch FROM x.timestamp)::float8 AS ts "
        f"FROM {t['interaction']} x WHERE x.user_id = u.id "
        f"ORDER BY x.timestamp DESC, x.id DESC LIMIT $2) x) h ON true"
    )
    row = _fetch_prepared(
        "recsite_user_history", sql, [external_id, int(limit)], one=True
    )
    if row[1] is None:
        return row[0], None
    attributes = row[2]
    if isinstance(attributes, (str, bytes)):
        attributes = json.loads(attributes)
    return row[0], (row[1], attributes or {}, list(row[3]), list(row[4]), list(row[5]))


def interaction_type_weights() -> dict[int, float]:
    """Signed weight per interaction type pk (negative types push away)."""
    return {
        pk: (weight if positive else -weight)
        for pk, weight, positive in InteractionType.objects.values_list(
            "id", "weight", "is_positive"
        )
    }


def item_pk_with_rules_signature(external_id: str) -> tuple[str, int | None]:
    """(signature of the active business rules, the item's pk or None): one trip."""
    sql = (
        f"SELECT s.signature, i.id FROM ({RULES_SIGNATURE_SQL}) s "
        f"LEFT JOIN {Item._meta.db_table} i ON i.external_id = $1"
    )
    row = _fetch_prepared("recsite_item_pk", sql, [external_id], one=True)
    return row[0], row[1]

def item_pks_by_external_ids(external_ids: list[str]) -> dict[str, int]:
    """external id -> pk for the ids that exist."""
    if not external_ids:
        return {}
    return dict(
        Item.objects.filter(external_id__in=external_ids).values_list(
            "external_id", "id"
        )
    )


_label_cache: dict[type, tuple[float, dict[int, str]]] = {}
LABEL_NAMES_TTL_S = 60.0


def label_names(model: type[Category] | type[Tag], pks: set[int]) -> dict[int, str]:
    """pk -> name of categories or tags, cached per process (names are few and
    rarely renamed: a rename shows within LABEL_NAMES_TTL_S)."""
    clock = time.monotonic()
    entry = _label_cache.get(model)
    if entry is None or clock - entry[0] > LABEL_NAMES_TTL_S:
        entry = (clock, {})
        _label_cache[model] = entry
    names = entry[1]
    missing = [pk for pk in pks if pk not in names]
    if missing:
        names.update(
            model.objects.filter(pk__in=missing).values_list("id", "name")
        )
    return names


def label_names_forget() -> None:
    """Drop the cached label names (tests; after renaming labels in bulk)."""
    _label_cache.clear()


def item_states(
    pks: list[int], *, now: datetime, rows_for: list[int] = ()
) -> tuple[dict[int, tuple[datetime, bool]], dict[int, ItemRow]]:
    """(updated_at, may be shown now) per item: the live part of an item row; and,
    in the same query, the whole `ItemRow` of the items in `rows_for`.

    Index lookups by primary key only; the serving layer caches the rest of each
    row until the item's updated_at changes and asks here for the rows it expects
    to show but has not cached (on traffic spread over a large catalog, most of a
    page), which saves a second round trip. The label subqueries run only for those
    (CASE evaluates them lazily). Labels come as ids, names from `label_names`
    (small tables, cached): joining the names in SQL made PostgreSQL plan a hash
    join per item, 1.4 ms of planning and 2.7 ms of execution for 34 items.
    """
    if not pks:
        return {}, {}
    t = _tables()
    wanted = "i.id = ANY($3)"
    sql = (
        f"SELECT i.id, i.updated_at, {_VISIBLE_SQL}, {wanted}, "
        f"CASE WHEN {wanted} THEN i.external_id END, "
        f"CASE WHEN {wanted} THEN i.title END, "
        f"CASE WHEN {wanted} THEN ARRAY(SELECT ic.category_id FROM {t['item_cat']} "
        "ic WHERE ic.item_id = i.id) END, "
        f"CASE WHEN {wanted} THEN ARRAY(SELECT it.tag_id FROM {t['item_tag']} it "
        "WHERE it.item_id = i.id) END "
        f"FROM {t['item']} i WHERE i.id = ANY($2)"
    )
    rows = _fetch_prepared(
        "recsite_item_states",
        sql,
        [now, [int(pk) for pk in pks], [int(pk) for pk in rows_for]],
    )
    states = {r[0]: (r[1], bool(r[2])) for r in rows}
    wanted_rows = [r for r in rows if r[3]]
    categories = label_names(Category, {c for r in wanted_rows for c in r[6]})
    tags = label_names(Tag, {g for r in wanted_rows for g in r[7]})
    full = {
        r[0]: ItemRow(
            pk=r[0],
            external_id=r[4],
            title=r[5] or "",
            visible=bool(r[2]),
            categories=tuple(sorted(categories[c] for c in r[6] if c in categories)),
            tags=tuple(sorted(tags[g] for g in r[7] if g in tags)),
        )
        for r in wanted_rows
    }
    return states, full


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
    qs = Item.objects.filter(MAYBE_UNAVAILABLE).filter(  # the partial index
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
