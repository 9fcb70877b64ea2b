"""Loading a generated data set (demo catalog, users and interactions) in bulk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction

from items.services import item_upsert_many
from recommendations.engine.synthetic import DEFAULT_INTERACTION_TYPES, InteractionLog
from recommendations.models import Interaction, InteractionType
from recommendations.services.interactions import interaction_copy_many
from recsite.validation import MAX_BATCH_ROWS, UpsertResult
from users.services import user_upsert_many

DEMO_ALREADY_LOADED = (
    "{count} of these users already have interactions: the demo data looks loaded. "
    "Pass replace=True (seed_demo --replace) to load it again."
)
DEMO_ROW_REJECTED = "Generated {kind} row {index} was rejected: {errors}"


class DemoDataError(ValueError):
    """The data set cannot be loaded as asked."""


@dataclass(frozen=True)
class DemoLoadResult:
    """What a load wrote."""

    users: int
    items: int
    interactions: int
    interactions_replaced: int


def interaction_types_ensure(*, names: Sequence[str]) -> dict[str, int]:
    """`{name: pk}`, creating missing types with the engine's suggested weights."""
    suggested = {spec.name: spec for spec in DEFAULT_INTERACTION_TYPES}
    pks = {}
    for name in names:
        spec = suggested.get(name)
        defaults = (
            {"weight": spec.weight, "is_positive": spec.is_positive} if spec else {}
        )
        pks[name] = InteractionType.objects.get_or_create(name=name, defaults=defaults)[
            0
        ].pk
    return pks


def _upsert_all(
    upsert: Callable[..., UpsertResult], rows: list[dict], kind: str
) -> dict[str, int]:
    pks: dict[str, int] = {}
    for start in range(0, len(rows), MAX_BATCH_ROWS):
        result = upsert(rows=rows[start : start + MAX_BATCH_ROWS])
        if result.rejected:
            first = result.rejected[0]
            raise DemoDataError(
                DEMO_ROW_REJECTED.format(
                    kind=kind, index=start + first["index"], errors=first["errors"]
                )
            )
        pks.update(result.pks)
    return pks


def demo_data_load(
    *,
    log: InteractionLog,
    replace: bool = False,
    chunk_rows: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> DemoLoadResult:
    """Write a generated `InteractionLog` (synthetic.generate, load_movielens) at once.

    Users and items are upserted in 10,000-row batches; interactions are appended
    with COPY in chunks of `chunk_rows`, calling `progress(rows)` after each. Loading
    the same users again is refused unless `replace`, which first deletes their
    interactions. One transaction: all or nothing.
    """
    users: list[dict[str, Any]] = [
        {**user, "id": str(user["id"])} for user in log.users
    ]
    items: list[dict[str, Any]] = [
        {**item, "id": str(item["id"])} for item in log.items
    ]
    with transaction.atomic():
        type_pks = interaction_types_ensure(names=log.type_names)
        user_pks = _upsert_all(user_upsert_many, users, "user")
        item_pks = _upsert_all(item_upsert_many, items, "item")
        user_array = np.array([user_pks[user["id"]] for user in users], dtype=np.int64)
        item_array = np.array([item_pks[item["id"]] for item in items], dtype=np.int64)
        type_array = np.array(
            [type_pks[name] for name in log.type_names], dtype=np.int64
        )
        replaced = 0
        with connection.cursor() as cursor:
            table = Interaction._meta.db_table
            if replace:
                cursor.execute(
                    f"DELETE FROM {table} WHERE user_id = ANY(%s::bigint[])",
                    [user_array.tolist()],
                )
                replaced = cursor.rowcount
            else:
                cursor.execute(
                    f"SELECT count(DISTINCT user_id) FROM {table} "
                    "WHERE user_id = ANY(%s::bigint[])",
                    [user_array.tolist()],
                )
                if count := cursor.fetchone()[0]:
                    raise DemoDataError(DEMO_ALREADY_LOADED.format(count=count))
        written = interaction_copy_many(
            user_pks=user_array[log.user_index],
            item_pks=item_array[log.item_index],
            type_pks=type_array[log.type_index],
            values=log.value,
            timestamps=log.timestamp,
            chunk_rows=chunk_rows,
            progress=progress,
        )
    return DemoLoadResult(
        users=len(users),
        items=len(items),
        interactions=written,
        interactions_replaced=replaced,
    )
