"""Reads of end-users."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q, QuerySet

from recsite.lookups import pks_by_external_id
from users.models import EndUser


def attribute_filter_q(field: str, key: str, raw_value: str) -> Q:
    """`key:value` from a query string: the attribute equals the value or lists it.

    The value matches as a string, and also as the number or boolean it spells.
    """
    q = Q(**{f"{field}__contains": {key: raw_value}}) | Q(
        **{f"{field}__contains": {key: [raw_value]}}
    )
    try:
        parsed = json.loads(raw_value)
    except ValueError:
        return q
    if isinstance(parsed, (bool, int, float)):
        q |= Q(**{f"{field}__contains": {key: parsed}})
    return q


def user_list(
    *,
    id_prefix: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    attributes: Iterable[tuple[str, str]] = (),
) -> QuerySet[EndUser]:
    """End-users matching the filters, oldest first (a stable order for paging)."""
    users = EndUser.objects.all()
    if id_prefix:
        users = users.filter(external_id__startswith=id_prefix)
    if created_after is not None:
        users = users.filter(created_at__gt=created_after)
    if created_before is not None:
        users = users.filter(created_at__lt=created_before)
    for key, value in attributes:
        users = users.filter(attribute_filter_q("attributes", key, value))
    return users.order_by("id")


def user_get(*, external_id: str) -> EndUser | None:
    """The end-user with this client id, or None."""
    return EndUser.objects.filter(external_id=external_id).first()


def user_pks_by_external_id(*, external_ids: Iterable[str]) -> dict[str, int]:
    """`{external_id: pk}` of the existing end-users among these ids (one query)."""
    return pks_by_external_id(EndUser, external_ids)
