"""Request guards: JSON errors under /api/, 503 during outages, input hygiene.

`ErrorResponseMiddleware` sits right after SecurityMiddleware, so it sees every
response and every exception a view raises:

- A JSON body under `/api/` that is larger than DATA_UPLOAD_MAX_MEMORY_SIZE is a
  413 JSON answer before anything parses it.
- Text PostgreSQL cannot store (NUL characters, lone UTF-16 surrogates) in the path,
  the query string or a JSON body is a 400 JSON answer, not a 500 deep in psycopg2.
- A database outage (OperationalError/InterfaceError) raised by any view is a 503:
  JSON under `/api/`, a plain page elsewhere (the admin), never a traceback.
- Any other error page under `/api/` (an unrouted 404, an unhandled 500) is JSON.
"""

import logging
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

from recsite.exceptions import (
    DATABASE_UNAVAILABLE,
    LONE_SURROGATE,
    NUL_CHARACTER,
    REQUEST_TOO_LARGE,
    database_or_input_error_response,
)

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("django.request")

API_PREFIX = "/api/"
SERVER_ERROR = "Internal server error; the failure was logged."
NOT_FOUND = "Not found."

# JSON escapes that decode to text PostgreSQL refuses: \u0000, and a surrogate
# escape that is not half of a high+low pair. A match counts only when the backslash
# starts an escape, i.e. an even number of backslashes precedes it.
_NUL_ESCAPE = re.compile(rb"\\u0000")
_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    rb"|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_BACKSLASH = 0x5C

SERVICE_UNAVAILABLE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    "<title>Service unavailable</title></head><body>"
    "<h1>Service unavailable</h1><p>{message}</p></body></html>"
)


def is_api_request(request) -> bool:
    """Whether the request is for the JSON API (its errors are JSON too)."""
    return request.path_info.startswith(API_PREFIX)


def _error(detail: str, code: str, status: int, **headers: str) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _starts_escape(body: bytes, index: int) -> bool:
    """Whether the backslash at `index` begins an escape (not escaped itself)."""
    preceding = 0
    while index - preceding - 1 >= 0 and body[index - preceding - 1] == _BACKSLASH:
        preceding += 1
    return preceding % 2 == 0


def _has_nul(body: bytes) -> bool:
    if b"\x00" in body:
        return True
    # The regexes only run when a cheap substring test says they may match: the
    # guard sees every JSON body, up to 10,000-row batches.
    if b"\\u0000" not in body:
        return False
    return any(_starts_escape(body, m.start()) for m in _NUL_ESCAPE.finditer(body))


def _has_lone_surrogate(body: bytes) -> bool:
    if b"\\ud" not in body and b"\\uD" not in body:
        return False
    position = 0
    while (match := _SURROGATE_ESCAPE.search(body, position)) is not None:
        if not _starts_escape(body, match.start()):
            position = match.start() + 2  # literal text "\\ud…": look past it only
            continue
        is_high = match.group(0)[3:4] in b"89abAB"
        if not is_high or match.group(1) is None:
            return True  # a low half alone, or a high half without its low half
        position = match.end()
    return False


def _is_json(request) -> bool:
    return (
        request.META.get("CONTENT_TYPE", "")
        .split(";")[0]
        .strip()
        .lower()
        .endswith("json")
    )


class ErrorResponseMiddleware:
    """Input hygiene before the view; JSON/503 error responses after it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rejected = self._reject_input(request)
        if rejected is not None:
            return rejected
        response = self.get_response(request)
        if (
            is_api_request(request)
            and response.status_code >= 400
            and "json" not in response.get("Content-Type", "")
        ):
            return self._json_for_error_page(response)
        return response

    def _reject_input(self, request):
        if "\x00" in request.path_info or "%00" in request.META.get("QUERY_STRING", ""):
            return self._bad_text(request, NUL_CHARACTER)
        if not (is_api_request(request) and _is_json(request)):
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        try:
            if limit is not None and length > limit:
                raise RequestDataTooBig()
            body = request.body  # cached: the parser reads it again for free
        except RequestDataTooBig:
            return _error(
                REQUEST_TOO_LARGE.format(limit=limit), "request_too_large", 413
            )
        if b"\\" not in body and b"\x00" not in body:
            return None  # no escape at all (the usual batch): one memchr each
        if _has_nul(body):
            return self._bad_text(request, NUL_CHARACTER)
        if _has_lone_surrogate(body):
            return self._bad_text(request, LONE_SURROGATE)
        return None

    def _bad_text(self, request, message: str):
        if is_api_request(request):
            return _error(message, "invalid_characters", 400)
        return HttpResponse(
            message, status=400, content_type="text/plain; charset=utf-8"
        )

    def _json_for_error_page(self, response):
        # Django's own pages (an unrouted URL, a 500 from an inner middleware).
        detail = NOT_FOUND if response.status_code == 404 else response.reason_phrase
        code = "not_found" if response.status_code == 404 else "error"
        if response.status_code >= 500:
            detail, code = SERVER_ERROR, "server_error"
        json_response = _error(detail, code, response.status_code)
        for header in ("Retry-After", "Allow", "WWW-Authenticate"):
            if header in response:
                json_response[header] = response[header]
        return json_response

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning(
                "database unavailable during %s: %s", request.path, exception
            )
            if is_api_request(request):
                return _error(
                    DATABASE_UNAVAILABLE,
                    "database_unavailable",
                    503,
                    **{"Retry-After": "5"},
                )
            response = HttpResponse(
                SERVICE_UNAVAILABLE_PAGE.format(message=DATABASE_UNAVAILABLE),
                status=503,
                content_type="text/html; charset=utf-8",
            )
            response["Retry-After"] = "5"
            return response
        if not is_api_request(request):
            return None  # Django's plain 404/500 pages (no traceback when DEBUG is off)
        known = database_or_input_error_response(exception)
        if known is not None:
            headers = (
                {"Retry-After": known["Retry-After"]} if "Retry-After" in known else {}
            )
            return _error(
                known.data["detail"], known.data["code"], known.status_code, **headers
            )
        if settings.DEBUG:
            return None  # the technical page helps a developer
        # What Django does for an uncaught exception, with a JSON body instead of HTML.
        got_request_exception.send(sender=None, request=request)
        request_logger.error(
            "Internal Server Error: %s",
            request.path,
            exc_info=(type(exception), exception, exception.__traceback__),
            extra={"status_code": 500, "request": request},
        )
        return _error(SERVER_ERROR, "server_error", 500)
