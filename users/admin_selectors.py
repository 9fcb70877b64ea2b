"""Reads for the admin's end-user pages (querysets with their joins applied)."""

from django.db.models import Count, IntegerField, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from recommendations.models import Interaction
from users.models import EndUser

RECENT_INTERACTIONS = 25


def end_user_admin_list() -> QuerySet[EndUser]:
    """End-users with their interaction count and last activity (one query per page)."""
    per_user = Interaction.objects.filter(user=OuterRef("pk")).order_by().values("user")
    return EndUser.objects.annotate(
        interaction_count=Coalesce(
            Subquery(
                per_user.annotate(c=Count("id")).values("c"),
                output_field=IntegerField(),
            ),
            0,
        ),
        last_seen_at=Subquery(per_user.annotate(m=Max("timestamp")).values("m")),
    )


def end_user_recent_interactions(
    *, user: EndUser, limit: int = RECENT_INTERACTIONS
) -> list[Interaction]:
    """The user's latest interactions, newest first, with item and type joined."""
    return list(
        Interaction.objects.filter(user=user)
        .select_related("item", "type")
        .order_by("-timestamp", "-id")[:limit]
    )
