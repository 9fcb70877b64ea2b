"""Plain-Python validation of API payloads shared by users, items and interactions.

Bulk endpoints validate up to 10,000 rows per request, where per-field DRF
serializers would dominate the request time; these functions check the parsed JSON
directly and report errors in DRF's `{"field": ["message"]}` shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ID_LENGTH = 255
MAX_BATCH_ROWS = 10_000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_LENGTH = 100
MAX_ATTRIBUTE_STRING_LENGTH = 1_000
MAX_ATTRIBUTE_LIST_LENGTH = 100
MAX_LABELS = 100
MAX_LABEL_LENGTH = 255

NON_FIELD_ERRORS = "non_field_errors"
REQUIRED = "This field is required."
UNKNOWN_FIELD = "Unknown field."
NOT_AN_OBJECT = "Expected an object."
NOT_A_LIST = "Expected a list."
BATCH_NOT_A_LIST = "Expected a list of objects."
BATCH_NOT_OBJECT_OR_LIST = "Expected an object or a list of objects."
BATCH_EMPTY = "The list is empty: send at least one row."
BATCH_TOO_LARGE = "Too many rows: send at most {max} per request (got {count})."
ID_INVALID = "Expected a string id."
ID_EMPTY = "An id may not be empty."
ID_TOO_LONG = f"Ensure this id has at most {MAX_ID_LENGTH} characters."
# Every id must be addressable in a URL path, and WSGI decodes %2F before routing.
ID_HAS_SLASH = "An id may not contain '/': ids are used in URL paths."
TEXT_INVALID = "Expected a string."
TEXT_TOO_LONG = "Ensure this field has at most {max} characters."
TEXT_BAD_CHARACTERS = "Text may not contain NUL characters or unpaired surrogates."
BOOL_INVALID = "Expected true or false."
DATETIME_INVALID = "Expected an ISO 8601 date-time, unix seconds, or null."
ATTRIBUTES_NOT_OBJECT = "Expected a JSON object of attributes."
ATTRIBUTES_TOO_MANY = f"Too many attributes: at most {MAX_ATTRIBUTES} keys."
ATTRIBUTE_KEY_INVALID = (
    f"Attribute names must be 1 to {MAX_ATTRIBUTE_KEY_LENGTH} characters of text."
)
ATTRIBUTE_NESTED = "Attribute {key!r}: nested objects are not allowed."
ATTRIBUTE_NULL = "Attribute {key!r}: null is not allowed (omit the key instead)."
ATTRIBUTE_NOT_FINITE = "Attribute {key!r}: numbers must be finite."
ATTRIBUTE_STRING_TOO_LONG = (
    f"Attribute {{key!r}}: strings are limited to {MAX_ATTRIBUTE_STRING_LENGTH} "
    "characters."
)
ATTRIBUTE_LIST_INVALID = (
    f"Attribute {{key!r}}: lists hold at most {MAX_ATTRIBUTE_LIST_LENGTH} strings of "
    f"at most {MAX_LABEL_LENGTH} characters."
)
LABELS_INVALID = (
    f"Expected a list of at most {MAX_LABELS} non-empty names of at most "
    f"{MAX_LABEL_LENGTH} characters."
)


class FieldInvalid(Exception):
    """Raised by a field cleaner; `messages` go to the field's error list."""

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = list(messages)


def text_is_storable(value: str) -> bool:
    """PostgreSQL text rejects NUL, and UTF-8 cannot encode unpaired surrogates."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_external_id(value: Any) -> str:
    """A client id: a non-empty string (integers are accepted) of ≤ 255 characters."""
    if isinstance(value, str):
        pass
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    else:
        raise FieldInvalid(ID_INVALID)
    if not value:
        raise FieldInvalid(ID_EMPTY)
    if len(value) > MAX_ID_LENGTH:
        raise FieldInvalid(ID_TOO_LONG)
    if "/" in value:
        raise FieldInvalid(ID_HAS_SLASH)
    if not text_is_storable(value):
        raise FieldInvalid(TEXT_BAD_CHARACTERS)
    return value


def text_cleaner(max_length: int) -> Callable[[Any], str]:
    """A cleaner for free text of at most `max_length` characters (may be empty)."""

    def clean(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldInvalid(TEXT_INVALID)
        if len(value) > max_length:
            raise FieldInvalid(TEXT_TOO_LONG.format(max=max_length))
        if not text_is_storable(value):
            raise FieldInvalid(TEXT_BAD_CHARACTERS)
        return value

    return clean


def clean_bool(value: Any) -> bool:
    """A JSON boolean (no "true"/1 coercion: a typo should not hide an item)."""
    if not isinstance(value, bool):
        raise FieldInvalid(BOOL_INVALID)
    return value


def parse_datetime_value(value: Any) -> datetime:
    """ISO 8601 (naive means UTC) or unix seconds to an aware datetime; ValueError."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(str(exc)) from exc
    raise ValueError("not a date-time")


def clean_optional_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time, unix seconds, or null."""
    if value is None:
        return None
    try:
        return parse_datetime_value(value)
    except (ValueError, TypeError) as exc:
        raise FieldInvalid(DATETIME_INVALID) from exc


def _label_ok(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_LABEL_LENGTH
        and text_is_storable(value)
    )


def clean_labels(value: Any) -> list[str]:
    """Category or tag names: a list of strings, stripped, de-duplicated in order."""
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        raise FieldInvalid(LABELS_INVALID)
    names = [name.strip() if isinstance(name, str) else name for name in value]
    if not all(_label_ok(name) for name in names):
        raise FieldInvalid(LABELS_INVALID)
    return list(dict.fromkeys(names))


def clean_attributes(value: Any) -> dict:
    """Flat attributes: values are strings, finite numbers, booleans or string lists."""
    if not isinstance(value, dict):
        raise FieldInvalid(ATTRIBUTES_NOT_OBJECT)
    if len(value) > MAX_ATTRIBUTES:
        raise FieldInvalid(ATTRIBUTES_TOO_MANY)
    errors = []
    for key, item in value.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY_LENGTH or not text_is_storable(key):
            errors.append(ATTRIBUTE_KEY_INVALID)
        elif isinstance(item, str):
            if len(item) > MAX_ATTRIBUTE_STRING_LENGTH:
                errors.append(ATTRIBUTE_STRING_TOO_LONG.format(key=key))
            elif not text_is_storable(item):
                errors.append(TEXT_BAD_CHARACTERS)
        elif isinstance(item, bool):
            pass
        elif isinstance(item, (int, float)):
            try:
                finite = math.isfinite(item)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                errors.append(ATTRIBUTE_NOT_FINITE.format(key=key))
        elif isinstance(item, list):
            if len(item) > MAX_ATTRIBUTE_LIST_LENGTH or not all(
                _label_ok(entry) for entry in item
            ):
                errors.append(ATTRIBUTE_LIST_INVALID.format(key=key))
        elif isinstance(item, dict):
            errors.append(ATTRIBUTE_NESTED.format(key=key))
        elif item is None:
            errors.append(ATTRIBUTE_NULL.format(key=key))
        else:  # pragma: no cover - JSON has no other types
            errors.append(ATTRIBUTES_NOT_OBJECT)
    if errors:
        raise FieldInvalid(*errors)
    return value


@dataclass(frozen=True)
class RowSpec:
    """How to clean one payload object: a cleaner per accepted key."""

    cleaners: Mapping[str, Callable[[Any], Any]]
    required: frozenset[str] = frozenset()
    # payload key -> key in the cleaned dict (e.g. "id" -> "external_id")
    rename: Mapping[str, str] = field(default_factory=dict)
    # cross-field check on the cleaned dict: returns {field: [messages]} or None
    check: Callable[[dict], dict | None] | None = None


def clean_row(
    spec: RowSpec, row: Any, *, partial: bool = False
) -> tuple[dict | None, dict | None]:
    """Return `(cleaned, None)` or `(None, errors)`; unknown keys are errors."""
    if not isinstance(row, dict):
        return None, {NON_FIELD_ERRORS: [NOT_AN_OBJECT]}
    cleaned: dict = {}
    errors: dict = {}
    for key, value in row.items():
        cleaner = spec.cleaners.get(key)
        if cleaner is None:
            errors[key] = [UNKNOWN_FIELD]
            continue
        try:
            cleaned[spec.rename.get(key, key)] = cleaner(value)
        except FieldInvalid as exc:
            errors[key] = exc.messages
    if not partial:
        for key in spec.required:
            if key not in row:
                errors[key] = [REQUIRED]
    if not errors and spec.check is not None:
        errors = spec.check(cleaned) or {}
    return (None, errors) if errors else (cleaned, None)


def clean_rows(
    spec: RowSpec, rows: Sequence[Any]
) -> tuple[list[tuple[int, dict]], list[dict]]:
    """Clean each row: `([(index, cleaned)], [{"index": i, "errors": {...}}])`."""
    valid: list[tuple[int, dict]] = []
    rejected: list[dict] = []
    for index, row in enumerate(rows):
        cleaned, errors = clean_row(spec, row)
        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append((index, cleaned))
    return valid, rejected


def max_batch_rows() -> int:
    """The largest batch one request may carry (settings RECSITE["MAX_BATCH_ROWS"])."""
    from django.conf import settings

    return int(settings.RECSITE.get("MAX_BATCH_ROWS", MAX_BATCH_ROWS))


def batch_error(data: Any, *, allow_object: bool = False) -> str | None:
    """Why a request body is not an acceptable batch, or None when it is."""
    if not isinstance(data, list):
        return BATCH_NOT_OBJECT_OR_LIST if allow_object else BATCH_NOT_A_LIST
    if not data:
        return BATCH_EMPTY
    limit = max_batch_rows()
    if len(data) > limit:
        return BATCH_TOO_LARGE.format(max=limit, count=len(data))
    return None


@dataclass
class UpsertResult:
    """Outcome of a bulk upsert: counts of distinct ids, rejected rows, id -> pk."""

    created: int = 0
    updated: int = 0
    accepted: int = 0  # valid rows (a repeated id counts once per row)
    rejected: list[dict] = field(default_factory=list)
    pks: dict[str, int] = field(default_factory=dict)
