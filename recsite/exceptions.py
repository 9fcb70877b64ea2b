"""API error handling: every failure is a JSON body with a clear message, not a 500."""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database is temporarily unavailable; retry shortly."
DATABASE_ERROR = "The request could not be stored."
QUEUE_UNAVAILABLE = "The task queue is temporarily unavailable; retry shortly."
REQUEST_TOO_LARGE = "The request body is larger than the limit of {limit} bytes."
INVALID_DATA = "A value could not be stored (invalid characters or out of range)."
CONFLICT = "The request conflicts with data stored at the same time; retry."
BAD_REQUEST = "The request is malformed."
NUL_CHARACTER = "Text may not contain NUL (\\x00) characters."
TOO_DEEP = "The JSON body is nested too deeply."
LONE_SURROGATE = "Text may not contain unpaired UTF-16 surrogates (\\ud800-\\udfff)."


def _is_nul_error(exc: BaseException) -> bool:
    # psycopg2 refuses NUL in a query parameter with a plain ValueError, before the
    # query reaches PostgreSQL (which rejects \x00 in text and \u0000 in jsonb).
    return isinstance(exc, ValueError) and "NUL (0x00)" in str(exc)


def _is_surrogate_error(exc: BaseException) -> bool:
    # An unpaired surrogate cannot be encoded to UTF-8 for the database.
    return isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc)


def _is_broker_error(exc: BaseException) -> bool:
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError
    except ImportError:  # pragma: no cover - kombu is a dependency
        return False
    return isinstance(exc, KombuOperationalError)


def _json_error(detail: str, code: str, http_status: int, **headers: str) -> Response:
    set_rollback()
    return Response(
        {"detail": detail, "code": code}, status=http_status, headers=headers
    )


def api_exception_handler(exc, context):
    """Extend DRF's handler: outages become 503, bad data 400, oversize bodies 413."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(
            exc.message_dict
            if hasattr(exc, "error_dict")
            else {"non_field_errors": exc.messages}
        )
    response = exception_handler(exc, context)
    if response is not None:
        return response
    return database_or_input_error_response(exc)


def database_or_input_error_response(exc: BaseException) -> Response | None:
    """A JSON response for the known non-DRF failures, or None (a real 500)."""
    if isinstance(exc, RequestDataTooBig):
        from django.conf import settings

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return _json_error(
            REQUEST_TOO_LARGE.format(limit=limit),
            "request_too_large",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return _json_error(BAD_REQUEST, "bad_request", status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RecursionError) and "decoding a JSON" in str(exc):
        # json.loads of e.g. 100,000 nested arrays: hostile input, not a server fault.
        return _json_error(TOO_DEEP, "too_deep", status.HTTP_400_BAD_REQUEST)
    if _is_nul_error(exc):
        return _json_error(
            NUL_CHARACTER, "invalid_characters", status.HTTP_400_BAD_REQUEST
        )
    if _is_surrogate_error(exc):
        return _json_error(
            LONE_SURROGATE, "invalid_characters", status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        return _json_error(
            DATABASE_UNAVAILABLE,
            "database_unavailable",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            **{"Retry-After": "5"},
        )
    if isinstance(exc, DataError):
        # e.g. \u0000 in jsonb, a number out of range: the input, not the server.
        logger.info("data rejected by the database: %s", exc)
        return _json_error(INVALID_DATA, "invalid_data", status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IntegrityError):
        # A unique-key race between two concurrent writers; the retry succeeds.
        logger.warning("integrity error: %s", exc)
        return _json_error(CONFLICT, "conflict", status.HTTP_409_CONFLICT)
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
        return _json_error(
            DATABASE_ERROR,
            "database_error",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            **{"Retry-After": "5"},
        )
    if _is_broker_error(exc):
        logger.warning("task broker unavailable: %s", exc)
        return _json_error(
            QUEUE_UNAVAILABLE,
            "queue_unavailable",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            **{"Retry-After": "5"},
        )
    return None
