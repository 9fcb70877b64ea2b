"""Recording interactions: the ingestion hot path, and bulk loads of resolved rows.

`interaction_record_many` serves `POST /api/v1/interactions/` (and file imports):
up to 10,000 rows per call are validated in plain Python, their users, items and
types resolved with one query each, and stored with one INSERT of unnested arrays.
Per-row DRF serializers and ORM objects cost more than the database work at this
size, so they are bypassed here; `tests/interactions/` compares this path with the
plain ORM one. `interaction_copy_many` appends already-resolved rows with COPY.
"""

from __future__ import annotations

import io
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from django.db import IntegrityError, connection, transaction

from items.models import Item
from recommendations.models import Interaction
from recommendations.selectors.interactions import interaction_type_pks
from recsite.lookups import array_literal, int_array_literal, pks_by_external_id
from recsite.validation import (
    MAX_ID_LENGTH,
    NON_FIELD_ERRORS,
    NOT_AN_OBJECT,
    REQUIRED,
    UNKNOWN_FIELD,
    text_is_storable,
)
from users.services import user_ensure_many

FIELDS = frozenset(
    {"user", "item", "type", "value", "timestamp", "event_id", "recommendation_id"}
)
# A timestamp may be this far ahead of the server clock (client clock skew).
MAX_FUTURE_S = 86_400.0

ID_INVALID = (
    f"Expected a non-empty string id of at most {MAX_ID_LENGTH} characters, without '/'."
)
TYPE_INVALID = "Expected the name of an interaction type."
UNKNOWN_ITEM = "Unknown item {id!r}."
UNKNOWN_TYPE = "Unknown interaction type {name!r}."
VALUE_INVALID = "Expected a finite number or null."
TIMESTAMP_INVALID = "Expected an ISO 8601 date-time, unix seconds, or null."
TIMESTAMP_IN_FUTURE = (
    "More than one day in the future (unix seconds are expected, not milliseconds)."
)
TIMESTAMP_TOO_OLD = "Before 1970-01-01."
EVENT_ID_INVALID = (
    f"Expected a non-empty string of at most {MAX_ID_LENGTH} characters, or null."
)
RECOMMENDATION_ID_INVALID = "Expected a UUID, or null."

_MISSING = object()


@dataclass
class InteractionBatchResult:
    """Outcome of one batch: rows stored, rows already stored, rows rejected."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)


class InteractionRow(NamedTuple):
    """One validated row, ids still external; `timestamp` in unix seconds."""

    index: int
    user: str
    item: str
    type: str
    value: float | None
    timestamp: float
    event_id: str | None
    recommendation_id: str | None


def _clean_id(value: Any) -> str | None:
    """The id as a string, or None when it is not an acceptable id."""
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        return None
    if 0 < len(value) <= MAX_ID_LENGTH and "/" not in value and text_is_storable(value):
        return value
    return None


def _clean_timestamp(value: Any, now: float) -> float | str:
    """Unix seconds, or the error message."""
    kind = type(value)
    if value is None:
        return now
    if kind is int or kind is float:
        try:
            seconds = float(value)
        except OverflowError:
            return TIMESTAMP_INVALID
    elif kind is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            try:  # unix seconds in a string (CSV files)
                seconds = float(value)
            except ValueError:
                return TIMESTAMP_INVALID
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        return TIMESTAMP_INVALID
    if not math.isfinite(seconds):
        return TIMESTAMP_INVALID
    if seconds > now + MAX_FUTURE_S:
        return TIMESTAMP_IN_FUTURE
    if seconds < 0:
        return TIMESTAMP_TOO_OLD
    return seconds


def interaction_rows_clean(
    rows: Sequence[Any], *, now: float | None = None
) -> tuple[list[InteractionRow], list[dict]]:
    """Validate parsed JSON rows: `(valid rows, [{"index": i, "errors": {...}}])`.

    Checks shapes only; unknown items and types are found by the caller's lookups.
    """
    now = time.time() if now is None else now
    valid: list[InteractionRow] = []
    rejected: list[dict] = []
    for index, row in enumerate(rows):
        if type(row) is not dict:
            rejected.append(
                {"index": index, "errors": {NON_FIELD_ERRORS: [NOT_AN_OBJECT]}}
            )
            continue
        errors: dict[str, list[str]] = {}
        if not FIELDS.issuperset(row):
            for key in row:
                if key not in FIELDS:
                    errors[key] = [UNKNOWN_FIELD]

        user = row.get("user", _MISSING)
        if user is _MISSING:
            errors["user"] = [REQUIRED]
        elif (user := _clean_id(user)) is None:
            errors["user"] = [ID_INVALID]
        item = row.get("item", _MISSING)
        if item is _MISSING:
            errors["item"] = [REQUIRED]
        elif (item := _clean_id(item)) is None:
            errors["item"] = [ID_INVALID]
        type_name = row.get("type", _MISSING)
        if type_name is _MISSING:
            errors["type"] = [REQUIRED]
        elif type(type_name) is not str:
            errors["type"] = [TYPE_INVALID]

        value = row.get("value")
        if value is not None:
            kind = type(value)
            if kind is float:
                if not math.isfinite(value):
                    errors["value"] = [VALUE_INVALID]
            elif kind is int:
                try:
                    value = float(value)
                except OverflowError:
                    errors["value"] = [VALUE_INVALID]
            else:
                errors["value"] = [VALUE_INVALID]

        timestamp = _clean_timestamp(row.get("timestamp"), now)
        if type(timestamp) is str:
            errors["timestamp"] = [timestamp]

        event_id = row.get("event_id")
        if event_id is not None and (event_id := _clean_id(event_id)) is None:
            errors["event_id"] = [EVENT_ID_INVALID]

        recommendation_id = row.get("recommendation_id")
        if recommendation_id is not None:
            try:
                recommendation_id = str(uuid.UUID(recommendation_id))
            except (TypeError, ValueError, AttributeError):
                errors["recommendation_id"] = [RECOMMENDATION_ID_INVALID]

        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append(
                InteractionRow(
                    index,
                    user,
                    item,
                    type_name,
                    value,
                    timestamp,
                    event_id,
                    recommendation_id,
                )
            )
    return valid, rejected


def interaction_record_many(
    *, rows: Sequence[Any], now: float | None = None
) -> InteractionBatchResult:
    """Store a batch of interaction payload rows; each bad row is rejected alone.

    Unknown users are created; a row naming an unknown item or type is rejected.
    A row whose `event_id` is already stored (or repeated in the batch) counts as a
    duplicate and is not stored again. One transaction, one INSERT.
    """
    valid, rejected = interaction_rows_clean(rows, now=now)
    if not valid:
        return InteractionBatchResult(rejected=rejected)
    try:
        result = _record(valid)
    except IntegrityError:
        if connection.in_atomic_block:
            raise
        # A user or item vanished between lookup and commit (their foreign keys
        # caught it): look everything up again once.
        result = _record(valid)
    result.rejected = sorted(
        rejected + result.rejected, key=lambda entry: entry["index"]
    )
    return result


# One index probe per id, whatever the planner estimates: with a plain join on
# unnest() it hashed the whole items table once a batch named more than ~600
# distinct items (15 ms of PostgreSQL CPU per 1,000-row batch at 100k items, and
# growing with the catalogue; LATERAL ... LIMIT 1 cannot be turned into a hash join).
def _item_pks(*, external_ids: set[str]) -> dict[str, int]:
    """`{external_id: pk}` of the existing items among these ids (one query)."""
    return pks_by_external_id(Item, external_ids)


def _record(valid: list[InteractionRow]) -> InteractionBatchResult:
    result = InteractionBatchResult()
    with transaction.atomic():
        type_pks = interaction_type_pks(names={row.type for row in valid})
        item_pks = _item_pks(external_ids={row.item for row in valid})
        known: list[InteractionRow] = []
        for row in valid:
            if row.item in item_pks and row.type in type_pks:
                known.append(row)
                continue
            errors = {}
            if row.item not in item_pks:
                errors["item"] = [UNKNOWN_ITEM.format(id=row.item)]
            if row.type not in type_pks:
                errors["type"] = [UNKNOWN_TYPE.format(name=row.type)]
            result.rejected.append({"index": row.index, "errors": errors})
        user_pks = user_ensure_many(external_ids={row.user for row in known})
        seen: set[str] = set()
        values = []
        for row in known:
            if row.event_id is not None:
                if row.event_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(row.event_id)
            values.append(
                (
                    user_pks[row.user],
                    item_pks[row.item],
                    type_pks[row.type],
                    row.value,
                    row.timestamp,
                    row.event_id,
                    row.recommendation_id,
                )
            )
        inserted = interaction_insert_resolved(values=values)
    result.accepted = inserted
    result.duplicates += len(values) - inserted
    return result


# One array per column, unnested server-side: for a 1,000-row batch PostgreSQL spends
# about a quarter less CPU than on an 8,000-parameter VALUES list (execute_values),
# which it must parse and plan. Each array goes as ONE text literal ('{1,2,…}',
# read by array_in) rather than psycopg2's ARRAY[1,2,…] of 1,000 constants, which
# both psycopg2 (one adapter per element) and PostgreSQL's parser and planner paid
# for element by element.
_INSERT_SQL = (
    f"INSERT INTO {Interaction._meta.db_table} "
    "(user_id, item_id, type_id, value, timestamp, event_id, recommendation_id, "
    "created_at) "
    "SELECT u, i, t, v, to_timestamp(s), e, r, now() FROM unnest("
    "%s::bigint[], %s::bigint[], %s::bigint[], %s::float8[], %s::float8[], "
    "%s::varchar[], %s::uuid[]) AS row(u, i, t, v, s, e, r)"
)
# ON CONFLICT makes every row a speculative insertion (an extra WAL record and
# more work per row, whether or not it has an event id), so it is only asked for
# when some row has an event id: rows without one can never conflict.
_ON_CONFLICT = " ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING"


def interaction_insert_resolved(*, values: Sequence[tuple]) -> int:
    """Insert `(user_pk, item_pk, type_pk, value, unix_seconds, event_id,
    recommendation_id)` tuples in one statement; returns rows inserted.

    Rows whose event_id is already stored are skipped (ON CONFLICT DO NOTHING).
    """
    if not values:
        return 0
    users, items, types, values_, stamps, event_ids, recommendation_ids = zip(
        *values, strict=True
    )
    params = [
        int_array_literal(users),
        int_array_literal(items),
        int_array_literal(types),
        array_literal(values_),
        array_literal(stamps),
        array_literal(event_ids),
        array_literal(recommendation_ids),
    ]
    sql = _INSERT_SQL
    if any(event_id is not None for event_id in event_ids):
        sql += _ON_CONFLICT
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


_COPY_SQL = (
    f"COPY {Interaction._meta.db_table} "
    "(user_id, item_id, type_id, value, timestamp, created_at) FROM STDIN"
)


def interaction_copy_many(
    *,
    user_pks: np.ndarray,
    item_pks: np.ndarray,
    type_pks: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray | None = None,
    chunk_rows: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append already-resolved rows with COPY, `chunk_rows` at a time.

    For bulk loads (demo data, benchmarks) of rows without event ids, which need no
    de-duplication; `timestamps` are unix seconds, `values` NaN where absent.
    `progress(n)` is called after each chunk. Returns rows written.
    """
    n_rows = len(user_pks)
    if not (len(item_pks) == len(type_pks) == len(timestamps) == n_rows):
        raise ValueError("interaction_copy_many: arrays differ in length")
    if values is not None and len(values) != n_rows:
        raise ValueError("interaction_copy_many: arrays differ in length")
    created_at = datetime.now(tz=UTC).isoformat()
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, n_rows, chunk_rows):
            stop = min(start + chunk_rows, n_rows)
            micros = np.rint(np.asarray(timestamps[start:stop], dtype=np.float64) * 1e6)
            stamps = np.datetime_as_string(
                micros.astype(np.int64).astype("datetime64[us]"),
                unit="us",
                timezone="UTC",
            ).tolist()
            if values is None:
                value_text = ["\\N"] * (stop - start)
            else:
                value_text = [
                    "\\N" if v != v else repr(v)  # NaN != NaN: absent
                    for v in np.asarray(values[start:stop], dtype=np.float64).tolist()
                ]
            text = "".join(
                f"{u}\t{i}\t{t}\t{v}\t{s}\t{created_at}\n"
                for u, i, t, v, s in zip(
                    np.asarray(user_pks[start:stop], dtype=np.int64).tolist(),
                    np.asarray(item_pks[start:stop], dtype=np.int64).tolist(),
                    np.asarray(type_pks[start:stop], dtype=np.int64).tolist(),
                    value_text,
                    stamps,
                    strict=True,
                )
            )
            with connection.wrap_database_errors:
                cursor.cursor.copy_expert(_COPY_SQL, io.StringIO(text))
            if progress is not None:
                progress(stop - start)
    return n_rows
