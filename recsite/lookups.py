"""Bulk id lookups and array parameters shared by the apps' selectors and services."""

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models


def pks_by_external_id(
    model: type[models.Model], external_ids: Iterable[str]
) -> dict[str, int]:
    """`{external_id: pk}` of the existing rows of `model` among these ids (one query).

    One probe of the unique index per id (a LATERAL subquery). With a join on
    `unnest()` PostgreSQL switched to hashing the whole table once a batch named more
    than ~600 distinct ids (22 ms at 100k rows, against 3.6 ms), and with
    `external_id = ANY(...)` it scanned the table.
    """
    ids = sorted(set(external_ids))  # sorted: neighbouring probes share index pages
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT w.key, t.id FROM unnest(%s::varchar[]) AS w(key) "
            f"CROSS JOIN LATERAL (SELECT id FROM {model._meta.db_table} "
            "WHERE external_id = w.key LIMIT 1) AS t",
            [array_literal(ids)],
        )
        return dict(cursor.fetchall())


def array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal of ints, floats, None or strings, sent as one text
    parameter: psycopg2's `ARRAY[...]` of 1,000 constants cost PostgreSQL 4 ms more
    to parse per batch, and Python 4 ms to build."""
    return "{" + ",".join(map(_array_element, values)) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if type(value) is str:
        # quoted, so commas, braces, spaces and the word NULL stay data
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if type(value) is float or type(value) is int:
        return repr(value)  # round-trips exactly
    return repr(float(value))  # e.g. a numpy scalar


def int_array_literal(values: Sequence[int]) -> str:
    """`array_literal` for ints only (faster)."""
    return "{" + ",".join(map(str, values)) + "}"
