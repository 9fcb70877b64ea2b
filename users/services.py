"""Writes for end-users and API keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from recommendations.models import Interaction
from recsite.validation import (
    RowSpec,
    UpsertResult,
    clean_attributes,
    clean_external_id,
    clean_row,
    clean_rows,
)
from users.authentication import hash_key
from users.models import ApiKey, EndUser
from users.selectors import user_pks_by_external_id

KEY_PREFIX = "rs"

USER_EXISTS = "An end-user with this id already exists."
ID_IMMUTABLE = "The id cannot be changed."

# The payload of one end-user (POST /users/, each row of POST /users/bulk/).
USER_ROW = RowSpec(
    cleaners={"id": clean_external_id, "attributes": clean_attributes},
    required=frozenset({"id"}),
    rename={"id": "external_id"},
)


def api_key_create(
    *, name: str, kind: str = ApiKey.Kind.WRITE, created_by=None
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key (never stored or shown again)."""
    if kind not in ApiKey.Kind.values:
        raise ValueError(
            f"Unknown key kind {kind!r}; choose from {ApiKey.Kind.values}."
        )
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


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Deactivate a key: requests made with it are refused (401) from now on."""
    if api_key.is_active:
        api_key.is_active = False
        api_key.save(update_fields=["is_active", "updated_at"])
    return api_key


def user_data_clean(data: Any, *, user: EndUser | None = None) -> dict:
    """Validate a create payload, or a PATCH payload when `user` is given."""
    cleaned, errors = clean_row(USER_ROW, data, partial=user is not None)
    if errors:
        raise ValidationError(errors)
    if (
        user is not None
        and cleaned.pop("external_id", user.external_id) != user.external_id
    ):
        raise ValidationError({"id": [ID_IMMUTABLE]})
    return cleaned


def user_create(*, external_id: str, attributes: dict | None = None) -> EndUser:
    """Create an end-user; a taken id is a validation error on `id`."""
    try:
        with transaction.atomic():
            return EndUser.objects.create(
                external_id=external_id, attributes=attributes or {}
            )
    except IntegrityError as exc:
        raise ValidationError({"id": [USER_EXISTS]}) from exc


def user_update(*, user: EndUser, attributes: dict | None = None) -> EndUser:
    """Update an end-user; `attributes`, when given, replaces the whole object."""
    if attributes is not None:
        user.attributes = attributes
        user.save(update_fields=["attributes", "updated_at"])
    return user


def user_delete(*, user: EndUser) -> int:
    """Delete an end-user and all their interactions; returns interactions deleted."""
    with transaction.atomic(), connection.cursor() as cursor:
        # One statement for any number of rows, rather than the ORM's cascade.
        cursor.execute(
            f"DELETE FROM {Interaction._meta.db_table} WHERE user_id = %s", [user.pk]
        )
        deleted = cursor.rowcount
        cursor.execute(f"DELETE FROM {EndUser._meta.db_table} WHERE id = %s", [user.pk])
    return deleted


def user_ensure_many(*, external_ids: Iterable[str]) -> dict[str, int]:
    """Primary keys of these end-users, creating the unknown ones (empty attributes)."""
    wanted = set(external_ids)
    if not wanted:
        return {}
    found = user_pks_by_external_id(external_ids=wanted)
    # Sorted, so concurrent batches take the unique-index locks of new ids in one
    # order and cannot deadlock each other.
    missing = sorted(wanted.difference(found))
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {EndUser._meta.db_table} "
                "(external_id, attributes, created_at, updated_at) "
                "SELECT x, '{}'::jsonb, now(), now() FROM unnest(%s::varchar[]) AS x "
                "ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id",
                [missing],
            )
            found.update(cursor.fetchall())
        raced = [external_id for external_id in missing if external_id not in found]
        if raced:  # created meanwhile by a concurrent request
            found.update(user_pks_by_external_id(external_ids=raced))
    return found


def user_upsert_many(*, rows: Sequence[Any]) -> UpsertResult:
    """Create or update end-users from payload rows; invalid rows are rejected alone.

    A row's `attributes`, when present, replaces the stored object; a row without it
    leaves an existing user's attributes unchanged. When an id repeats, the last
    row wins.
    """
    valid, rejected = clean_rows(USER_ROW, rows)
    result = UpsertResult(accepted=len(valid), rejected=rejected)
    latest: dict[str, dict] = {}
    for _, row in valid:
        latest[row["external_id"]] = {**latest.get(row["external_id"], {}), **row}
    if not latest:
        return result
    with transaction.atomic():
        existing = user_pks_by_external_id(external_ids=latest)
        with_attributes = [
            EndUser(**row) for row in latest.values() if "attributes" in row
        ]
        without_attributes = [
            EndUser(external_id=row["external_id"])
            for row in latest.values()
            if "attributes" not in row
        ]
        for users, update_fields in (
            (with_attributes, ["attributes", "updated_at"]),
            (without_attributes, ["updated_at"]),
        ):
            if users:
                EndUser.objects.bulk_create(
                    users,
                    update_conflicts=True,
                    unique_fields=["external_id"],
                    update_fields=update_fields,
                )
                result.pks.update((user.external_id, user.pk) for user in users)
    result.updated = sum(1 for external_id in latest if external_id in existing)
    result.created = len(latest) - result.updated
    return result
