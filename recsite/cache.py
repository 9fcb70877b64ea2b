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

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
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


class _ReusingClient(RedisCacheClient):
    """Django's client, but one `redis.Redis` object per connection pool.

    Django builds a new `redis.Redis` for every cache call, and each one builds its
    table of ~200 response callbacks: about 0.15 ms of CPU per call, several times per
    API request (throttling, serving's keys). A `redis.Redis` over a pool is
    thread-safe, and the pool reconnects after a fork by itself.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._client(connection_pool=self._get_connection_pool(write))
            self._clients[index] = client
        return client

    def window_counts(
        self, current: str, previous: str, timeout: int, add: int, add_previous: int
    ) -> list[int]:
        """INCRBY `current` (expiring after `timeout` s) and read `previous`, after
        adding `add_previous` to it: one trip."""
        pipe = self.get_client(write=True).pipeline(transaction=False)
        pipe.incrby(current, add)
        pipe.expire(current, timeout)
        if add_previous:
            pipe.incrby(previous, add_previous)
            pipe.expire(previous, timeout)
            count, _, before, _ = pipe.execute()
        else:
            pipe.get(previous)
            count, _, before = pipe.execute()
        return [int(count), int(before or 0)]

    def window_decr(self, key: str) -> None:
        """Undo one INCR of `window_counts`."""
        self.get_client(write=True).decr(key)


class CircuitBreakerRedisCache(RedisCache):
    """Django's RedisCache that fails fast for a while after Redis failed."""

    def __init__(self, server, params):
        options = dict(params.get("OPTIONS", {}))
        self._open_seconds = float(
            options.pop("CIRCUIT_BREAKER_SECONDS", DEFAULT_OPEN_SECONDS)
        )
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = _ReusingClient

    def window_counts(
        self,
        current: str,
        previous: str,
        timeout: int,
        add: int = 1,
        add_previous: int = 0,
    ) -> list[int]:
        """[count of `current` after adding `add`, count of `previous` after adding
        `add_previous`] (keys are prefixed like every cache key); the keys added to
        expire after `timeout` seconds."""
        return self._cache.window_counts(
            self.make_and_validate_key(current),
            self.make_and_validate_key(previous),
            int(timeout),
            int(add),
            int(add_previous),
        )

    def window_uncount(self, key: str) -> None:
        """Take back one increment of `window_counts` (a refused request)."""
        self._cache.window_decr(self.make_and_validate_key(key))

    @cached_property
    def _cache(self):
        client = self._class(self._servers, **self._options)
        return _GuardedClient(client, tuple(self._servers), self._open_seconds)


def circuit_reset() -> None:
    """Close every circuit (tests; after Redis is known to be back)."""
    _open_until.clear()
