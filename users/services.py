"""Writes for end-users and API keys."""

import secrets

from django.db import transaction

from users.authentication import hash_key
from users.models import ApiKey

KEY_PREFIX = "rs"


def api_key_create(*, name: str, kind: str = ApiKey.Kind.WRITE, created_by=None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never stored or shown again."""
    if kind not in ApiKey.Kind.values:
        raise ValueError(f"Unknown key kind {kind!r}; choose from {ApiKey.Kind.values}.")
    prefix = secrets.token_hex(4)
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            name=name,
            kind=kind,
            prefix=prefix,
            hashed_key=hash_key(raw_key),
            created_by=created_by,
        )
    return api_key, raw_key
