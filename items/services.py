"""Writes for the item catalog: create, update, hide, delete and bulk upsert."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from items.models import Item
from items.selectors import item_windows_by_external_id, label_pks_by_name
from recommendations.models import Interaction
from recsite.validation import (
    RowSpec,
    UpsertResult,
    clean_attributes,
    clean_bool,
    clean_external_id,
    clean_labels,
    clean_optional_datetime,
    clean_row,
    clean_rows,
    text_cleaner,
)

MAX_TITLE_LENGTH = 500
MAX_DESCRIPTION_LENGTH = 50_000

ITEM_EXISTS = "An item with this id already exists."
ID_IMMUTABLE = "The id cannot be changed."
AVAILABILITY_ORDER = "available_until must be later than available_from."

LABEL_FIELDS = ("categories", "tags")


def _check_window(row: dict) -> dict | None:
    start, end = row.get("available_from"), row.get("available_until")
    if start is not None and end is not None and end <= start:
        return {"available_until": [AVAILABILITY_ORDER]}
    return None


# The payload of one item (POST /items/, PATCH /items/{id}/, rows of /items/bulk/).
ITEM_ROW = RowSpec(
    cleaners={
        "id": clean_external_id,
        "title": text_cleaner(MAX_TITLE_LENGTH),
        "description": text_cleaner(MAX_DESCRIPTION_LENGTH),
        "categories": clean_labels,
        "tags": clean_labels,
        "attributes": clean_attributes,
        "is_hidden": clean_bool,
        "available_from": clean_optional_datetime,
        "available_until": clean_optional_datetime,
    },
    required=frozenset({"id"}),
    rename={"id": "external_id"},
    check=_check_window,
)


def item_data_clean(data: Any, *, item: Item | None = None) -> dict:
    """Validate a create payload, or a PATCH payload of `item` when given."""
    cleaned, errors = clean_row(ITEM_ROW, data, partial=item is not None)
    if errors:
        raise ValidationError(errors)
    if item is not None:
        if cleaned.pop("external_id", item.external_id) != item.external_id:
            raise ValidationError({"id": [ID_IMMUTABLE]})
        window = {
            "available_from": cleaned.get("available_from", item.available_from),
            "available_until": cleaned.get("available_until", item.available_until),
        }
        if errors := _check_window(window):
            raise ValidationError(errors)
    return cleaned


def item_create(
    *,
    external_id: str,
    title: str = "",
    description: str = "",
    categories: Sequence[str] = (),
    tags: Sequence[str] = (),
    attributes: dict | None = None,
    is_hidden: bool = False,
    available_from: datetime | None = None,
    available_until: datetime | None = None,
) -> Item:
    """Create an item with its categories and tags (created when new)."""
    try:
        with transaction.atomic():
            item = Item.objects.create(
                external_id=external_id,
                title=title,
                description=description,
                attributes=attributes or {},
                is_hidden=is_hidden,
                available_from=available_from,
                available_until=available_until,
            )
            _item_labels_replace(
                field="categories", names_by_item={item.pk: categories}
            )
            _item_labels_replace(field="tags", names_by_item={item.pk: tags})
    except IntegrityError as exc:
        if Item.objects.filter(external_id=external_id).exists():
            raise ValidationError({"id": [ITEM_EXISTS]}) from exc
        raise
    return item


def item_update(*, item: Item, **fields: Any) -> Item:
    """Update an item; `categories`/`tags`/`attributes`, when given, replace the old."""
    labels = {name: fields.pop(name) for name in LABEL_FIELDS if name in fields}
    unknown = set(fields) - {f.name for f in Item._meta.concrete_fields}
    if unknown:
        raise TypeError(f"item_update() got unknown fields {sorted(unknown)}")
    with transaction.atomic():
        for name, value in fields.items():
            setattr(item, name, value)
        item.save(update_fields=[*fields, "updated_at"])
        for name, names in labels.items():
            _item_labels_replace(field=name, names_by_item={item.pk: names})
    return item


def item_set_hidden(
    *, items: QuerySet[Item] | Iterable[Item | int], hidden: bool
) -> int:
    """Hide or show items, effective at once; returns the number of rows changed."""
    if isinstance(items, QuerySet):
        queryset = items
    else:
        pks = [item.pk if isinstance(item, Item) else int(item) for item in items]
        queryset = Item.objects.filter(pk__in=pks)
    return queryset.exclude(is_hidden=hidden).update(
        is_hidden=hidden, updated_at=timezone.now()
    )


def item_delete(*, item: Item) -> int:
    """Delete an item with its interactions; returns interactions deleted."""
    with transaction.atomic(), connection.cursor() as cursor:
        # One statement for any number of interactions, rather than the ORM's cascade.
        cursor.execute(
            f"DELETE FROM {Interaction._meta.db_table} WHERE item_id = %s", [item.pk]
        )
        deleted = cursor.rowcount
        item.delete()  # labels and business rules of the item go with it
    return deleted


def item_upsert_many(*, rows: Sequence[Any]) -> UpsertResult:
    """Create or update items from payload rows; invalid rows are rejected alone.

    Fields a row omits keep their stored value on an existing item (defaults on a
    new one); `categories`, `tags` and `attributes` replace the stored ones when
    given. When an id repeats, later rows win field by field. Categories and tags
    are created on the fly. A 10,000-row batch is a handful of statements.
    """
    valid, rejected = clean_rows(ITEM_ROW, rows)
    latest: dict[str, tuple[int, dict]] = {}
    for index, row in valid:
        previous = latest.get(row["external_id"], (index, {}))[1]
        latest[row["external_id"]] = (index, {**previous, **row})
    result = UpsertResult(accepted=len(valid), rejected=rejected)
    if not latest:
        return result
    with transaction.atomic():
        existing = item_windows_by_external_id(external_ids=latest)
        # A row may set one end of the availability window: check it with the
        # stored other end, so the table's check constraint never fails the batch.
        for external_id, (index, row) in list(latest.items()):
            stored = existing.get(external_id)
            window = {
                key: row[key] if key in row else (stored[key] if stored else None)
                for key in ("available_from", "available_until")
            }
            if errors := _check_window(window):
                rejected.append({"index": index, "errors": errors})
                result.accepted -= 1
                del latest[external_id]
        groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
        for _, row in latest.values():
            fields = tuple(
                sorted(k for k in row if k != "external_id" and k not in LABEL_FIELDS)
            )
            groups[fields].append(row)
        names_by_item: dict[str, dict[int, list[str]]] = {
            name: {} for name in LABEL_FIELDS
        }
        for fields, group in groups.items():
            objs = [
                Item(**{k: v for k, v in row.items() if k not in LABEL_FIELDS})
                for row in group
            ]
            Item.objects.bulk_create(
                objs,
                update_conflicts=True,
                unique_fields=["external_id"],
                update_fields=[*fields, "updated_at"],
            )
            for obj, row in zip(objs, group, strict=True):
                result.pks[obj.external_id] = obj.pk
                for name in LABEL_FIELDS:
                    if name in row:
                        names_by_item[name][obj.pk] = row[name]
        for name, by_item in names_by_item.items():
            _item_labels_replace(field=name, names_by_item=by_item)
    rejected.sort(key=lambda entry: entry["index"])
    result.updated = sum(1 for external_id in latest if external_id in existing)
    result.created = len(latest) - result.updated
    return result


def labels_get_or_create(*, model: type[Model], names: Iterable[str]) -> dict[str, int]:
    """`{name: pk}` of Category or Tag rows, creating the missing names in bulk."""
    wanted = set(names)
    found = label_pks_by_name(model=model, names=wanted)
    missing = sorted(wanted.difference(found))  # one lock order for concurrent calls
    if missing:
        model.objects.bulk_create(
            [model(name=name) for name in missing], ignore_conflicts=True
        )
        found.update(label_pks_by_name(model=model, names=missing))
    return found


def _item_labels_replace(
    *, field: str, names_by_item: Mapping[int, Sequence[str]]
) -> None:
    """Replace the `categories` or `tags` of these items: one DELETE, one INSERT."""
    if not names_by_item:
        return
    m2m = Item._meta.get_field(field)
    through = m2m.remote_field.through._meta.db_table
    item_column, label_column = m2m.m2m_column_name(), m2m.m2m_reverse_name()
    pks = labels_get_or_create(
        model=m2m.related_model,
        names={name for names in names_by_item.values() for name in names},
    )
    item_pks, label_pks = [], []
    for item_pk, names in names_by_item.items():
        for name in names:
            item_pks.append(item_pk)
            label_pks.append(pks[name])
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {through} WHERE {item_column} = ANY(%s::bigint[])",
            [list(names_by_item)],
        )
        if item_pks:
            cursor.execute(
                f"INSERT INTO {through} ({item_column}, {label_column}) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[])",
                [item_pks, label_pks],
            )
