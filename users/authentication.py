"""Bearer API-key authentication for the REST API."""

import hashlib
import logging
import time

from django.db import DatabaseError, connection, transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from recsite.changes import VersionedCache
from recsite.lookups import fetch_prepared
from users.models import ApiKey

logger = logging.getLogger(__name__)

INVALID_KEY = "Invalid or revoked API key."


# Every API request looks its key up: a prepared statement on the unique index
# (0.1 ms) instead of an ORM query (0.6 ms of Python to build and run it).
# (In the model's field order, which `Model.from_db` expects.)
_KEY_FIELDS = tuple(
    f.attname
    for f in ApiKey._meta.concrete_fields
    if f.attname in {"id", "kind", "prefix", "name"}
)
_KEY_SQL = (
    f"SELECT {', '.join(_KEY_FIELDS)} FROM {ApiKey._meta.db_table} "
    "WHERE hashed_key = $1 AND is_active"
)


# Keys looked up by this process, kept while the change feed is live and no write
# to the key table was notified since (recsite/changes.py): a revoked key is refused
# as soon as its notification arrives, milliseconds after the revocation commits.
# Unknown keys are kept too (a key created later is a write to the table).
_KEY_CACHE_MAX = 10_000
_key_cache = VersionedCache(ApiKey._meta.db_table, _KEY_CACHE_MAX)


def _key_row(hashed: str) -> tuple | None:
    return _key_cache.get(
        hashed, lambda: fetch_prepared("recsite_api_key", _KEY_SQL, [hashed], one=True)
    )


def key_cache_clear() -> None:
    """Forget the keys this process looked up (tests)."""
    _key_cache.clear()
    _key_used.clear()


# When each key was last used, for the admin: written at most once a minute per key
# (the UPDATE's condition), and a process does not even try for a key it recorded
# less than a minute ago, so a busy key costs a write a minute, not one per request.
# The change feed's trigger ignores this column: it invalidates no key cache.
KEY_USE_WRITE_S = 60
_key_used: dict[int, float] = {}
_USE_SQL = (
    f"UPDATE {ApiKey._meta.db_table} SET last_used_at = now() WHERE id = %s AND "
    "(last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s))"
)


def _record_use(key_id: int) -> None:
    clock = time.monotonic()
    last = _key_used.get(key_id)
    if last is not None and clock - last < KEY_USE_WRITE_S:
        return
    if len(_key_used) >= _KEY_CACHE_MAX:
        _key_used.clear()
    _key_used[key_id] = clock
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_USE_SQL, [key_id, KEY_USE_WRITE_S])
    except DatabaseError as exc:  # the request goes on; the next minute tries again
        logger.warning("could not record the use of API key %s: %s", key_id, exc)


def hash_key(raw_key: str) -> str:
    """The SHA-256 hex digest stored for a key (keys are random: no salt needed)."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


class ApiKeyPrincipal:
    """The `request.user` of a request authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_active = True

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = None
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`; `request.auth` is the ApiKey row."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(INVALID_KEY) from exc
        if len(raw_key) > 128:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        row = _key_row(hash_key(raw_key))
        if row is None:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        # A model instance with the other fields deferred, as `.only()` gives.
        api_key = ApiKey.from_db("default", _KEY_FIELDS, row)
        _record_use(api_key.pk)
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI document (Swagger UI, fuzzers) how to authenticate."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer <key>` "
            "(`manage.py create_api_key`).",
        }
