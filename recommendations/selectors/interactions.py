"""Reads of interactions and interaction types."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.db.models import QuerySet

from recommendations.models import Interaction, InteractionType
from users.models import EndUser

# Interaction types change rarely (staff edit them in the admin), so ingestion keeps
# `{name: pk}` in process memory: reloaded after this many seconds, or at once when
# a batch names a type it does not know yet.
TYPE_CACHE_TTL_S = 30.0

_type_cache: dict[str, int] = {}
_type_cache_loaded_at = float("-inf")
_type_cache_lock = threading.Lock()


def interaction_type_pks(*, names: Iterable[str]) -> dict[str, int]:
    """`{name: pk}` of the known interaction types among `names` (cached)."""
    global _type_cache, _type_cache_loaded_at
    wanted = set(names)
    cache = _type_cache
    stale = time.monotonic() - _type_cache_loaded_at > TYPE_CACHE_TTL_S
    if stale or not wanted.issubset(cache):
        cache = dict(InteractionType.objects.values_list("name", "id"))
        with _type_cache_lock:
            _type_cache, _type_cache_loaded_at = cache, time.monotonic()
    return {name: cache[name] for name in wanted if name in cache}


def interaction_types_cache_clear() -> None:
    """Forget the cached types (call after renaming or deleting one)."""
    global _type_cache, _type_cache_loaded_at
    with _type_cache_lock:
        _type_cache, _type_cache_loaded_at = {}, float("-inf")


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
