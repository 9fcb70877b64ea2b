"""Django's Redis cache with a circuit breaker: a hung Redis costs one timeout, once.

Every request touches the cache (throttling, serving's invalidation keys, the
popularity lists). Redis refusing connections fails fast by itself, but a Redis that
hangs or a network partition makes each call wait for the socket timeout: one to three
seconds per request, enough to exhaust every gunicorn worker. After a connection error
or timeout this backend raises at once for `CIRCUIT_BREAKER_SECONDS` (an OPTIONS key,
default 5) in this process, then lets one call try again. Callers see the same
exception type as before (a redis `ConnectionError`), so their fallbacks apply.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

DEFAULT_OPEN_SECONDS = 5.0
CIRCUIT_OPEN = "Redis cache skipped for a few seconds after a failure (circuit open)."

# Per process and per server list: every thread's cache instance shares the state.
_open_until: dict[tuple[str, ...], float] = {}


class CacheUnavailable(RedisConnectionError):
    """Raised without calling Redis while the circuit is open."""


class _GuardedClient:
    """Wraps Django's RedisCacheClient: every method goes through the breaker."""

    def __init__(self, client, servers: tuple[str, ...], open_seconds: float) -> None:
        self._client = client
        self._servers = servers
        self._open_seconds = open_seconds

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def guarded(*args, **kwargs):
            if time.monotonic() < _open_until.get(self._servers, 0.0):
                raise CacheUnavailable(CIRCUIT_OPEN)
            try:
                return attribute(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if not isinstance(exc, CacheUnavailable):
                    _open_until[self._servers] = time.monotonic() + self._open_seconds
                    logger.warning(
                        "redis cache unavailable (%s); skipping it for %.0f s",
                        exc,
                        self._open_seconds,
                    )
                raise

        return guarded


class CircuitBreakerRedisCache(RedisCache):
    """Django's RedisCache that fails fast for a while after Redis failed."""

    def __init__(self, server, params):
        options = dict(params.get("OPTIONS", {}))
        self._open_seconds = float(
            options.pop("CIRCUIT_BREAKER_SECONDS", DEFAULT_OPEN_SECONDS)
        )
        super().__init__(server, {**params, "OPTIONS": options})

    @cached_property
    def _cache(self):
        client = self._class(self._servers, **self._options)
        return _GuardedClient(client, tuple(self._servers), self._open_seconds)


def circuit_reset() -> None:
    """Close every circuit (tests; after Redis is known to be back)."""
    _open_until.clear()
