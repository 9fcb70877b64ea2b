"""Reads of interactions and interaction types."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from recommendations.models import Interaction, InteractionType
from users.models import EndUser

_TYPE_PKS_SQL = (
    f"SELECT name, id FROM {InteractionType._meta.db_table} "
    "WHERE name = ANY(%s::varchar[])"
)


def interaction_type_pks(*, names: Iterable[str]) -> dict[str, int]:
    """`{name: pk}` of the interaction types among `names`, as stored right now.

    Not cached: `Interaction.type` has no database foreign key (1,000 per-row
    checks per batch cost more than the rest of the type handling), so ingestion
    reads the types inside its own transaction instead of trusting a copy that a
    deleted type could outlive.
    """
    wanted = sorted(set(names))
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_TYPE_PKS_SQL, [wanted])
        return dict(cursor.fetchall())


def interaction_list_for_user(*, user: EndUser) -> QuerySet[Interaction]:
    """The user's interactions, newest first, with item and type joined."""
    return (
        Interaction.objects.filter(user=user)
        .select_related("item", "type")
        .only(
            "id",
            "value",
            "timestamp",
            "event_id",
            "recommendation_id",
            "created_at",
            "item",
            "type",
            "item__external_id",
            "type__name",
        )
        .order_by("-timestamp", "-id")
    )
