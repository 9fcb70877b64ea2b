"""Reads for popularity: time-decayed interaction scores per item, in one SQL query."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from items.models import Item
from recommendations.models import Interaction, InteractionType

# Rows are located by `created_at` (indexed) with this margin before the window,
# which catches events whose timestamp is slightly ahead of their insertion.
_CREATED_MARGIN = timedelta(days=1)


def _decayed_top(
    *,
    now: datetime,
    window: timedelta,
    half_life: timedelta,
    limit: int,
    min_events: int,
) -> list[list]:
    interaction = Interaction._meta.db_table
    itype = InteractionType._meta.db_table
    item = Item._meta.db_table
    sql = f"""
        SELECT s.item_id, s.score FROM (
            SELECT i.item_id,
                   SUM(
                       t.weight * (CASE WHEN t.is_positive THEN 1 ELSE -1 END)
                       * power(
                           2.0,
                           -GREATEST(extract(epoch FROM (%(now)s - i.timestamp)), 0)
                           / %(half_life)s
                       )
                   ) AS score,
                   COUNT(*) AS n
            FROM {interaction} i
            JOIN {itype} t ON t.id = i.type_id
            WHERE i.created_at >= %(created_from)s
              AND i.timestamp >= %(start)s AND i.timestamp <= %(now)s
              AND t.weight > 0
            GROUP BY i.item_id
        ) s
        JOIN {item} it ON it.id = s.item_id
        WHERE s.score > 0 AND s.n >= %(min_events)s
          AND NOT it.is_hidden
          AND (it.available_from IS NULL OR it.available_from <= %(now)s)
          AND (it.available_until IS NULL OR it.available_until > %(now)s)
        ORDER BY s.score DESC, s.item_id
        LIMIT %(limit)s
    """
    params = {
        "now": now,
        "start": now - window,
        "created_from": now - window - _CREATED_MARGIN,
        "half_life": half_life.total_seconds(),
        "limit": int(limit),
        "min_events": int(min_events),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [[int(pk), round(float(score), 6)] for pk, score in cursor.fetchall()]


def popularity_scores(
    *,
    now: datetime,
    window: timedelta,
    half_life: timedelta,
    trending_window: timedelta,
    trending_half_life: timedelta,
    limit: int = 1000,
    trending_min_events: int = 2,
) -> dict[str, list[list]]:
    """`{"popular": [[item_pk, score], ...], "trending": [...]}`, best first."""
    return {
        "popular": _decayed_top(
            now=now, window=window, half_life=half_life, limit=limit, min_events=1
        ),
        "trending": _decayed_top(
            now=now,
            window=trending_window,
            half_life=trending_half_life,
            limit=limit,
            min_events=trending_min_events,
        ),
    }
