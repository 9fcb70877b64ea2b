"""Per-key request throttling, rate by key kind (settings: THROTTLE_*).

A sliding-window counter in Redis: one pipelined round trip per request (INCR this
window's counter, read the previous window's), O(1) whatever the rate. The estimate
is `previous × (share of the previous window still inside the last `duration`
seconds) + current`, the usual approximation of a true sliding window (it assumes
the previous window's requests were evenly spread).

DRF's stock `SimpleRateThrottle` keeps the timestamp of every request of the window
in one cache entry and reads and rewrites the whole list on every request: at
6,000/min that is up to 48 KB pickled, sent and unpickled twice per request.

Far below the limit, counted in batches. The Redis round trip was the dearest layer
of a do-nothing authenticated endpoint (docs/benchmarks.md, section 5a: it took a
third of the requests/s such an endpoint reaches). While a key's last known estimate,
plus what this process counted since, stays under `LOCAL_SHARE` of its limit, the
process counts requests itself and adds them to Redis in one INCRBY every
`batch_size(limit)` requests (1% of the limit, at most `BATCH_MAX`) or `SYNC_S`
seconds, whichever comes first. A process that sees a key at `LOCAL_SHARE` of its
limit or more sends every request to Redis, as before. The approximation: a process
whose last look was below `LOCAL_SHARE` may let at most one batch through before it
looks again, however fast the other processes' requests came meanwhile, so with N
processes serving a key it can end a window at most (N - 1) batches, (N - 1)% of
its limit, above it. With one process, or a limit under 200 per window (a batch of
1: never batched), refusals are exact. A worker that exits loses at most its last
unsent batch (the count is then low by that much, never high).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from users.permissions import request_key

logger = logging.getLogger(__name__)

LOCAL_SHARE = 0.5  # below this share of the limit, requests are counted in batches
BATCH_SHARE = 0.01  # batch size, as a share of the limit ...
BATCH_MAX = 100  # ... and at most this many requests
SYNC_S = 1.0  # and at most this long between two round trips for one key


def batch_size(num_requests: int) -> int:
    """Requests of one key a process may count before adding them to Redis."""
    return max(1, min(BATCH_MAX, int(num_requests * BATCH_SHARE)))


@dataclass
class _Tally:
    """What this process knows of one key's counters."""

    window: int  # the window of `known` and `pending`
    known: int  # Redis's count of that window at the last round trip
    before: int  # Redis's count of the window before it, then
    pending: int  # requests counted here since, not yet in Redis
    synced_at: float


_tallies: dict[str, _Tally] = {}
_tallies_lock = threading.Lock()  # gthread workers serve requests in threads


def throttle_local_reset() -> None:
    """Forget this process's batches (tests; their counts are not sent)."""
    with _tallies_lock:
        _tallies.clear()


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Counts requests per API key (or per staff user) in the shared Redis cache."""

    scope = "write"
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self) -> None:  # the rate depends on the key: see allow_request
        self.wait_s: float | None = None

    def allow_request(self, request, view):
        api_key = request_key(request)
        if api_key is not None:
            self.scope = api_key.kind
        elif getattr(request.user, "is_staff", False):
            self.scope = "staff"
        else:
            return True  # unauthenticated requests are refused (401) or public pages
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.num_requests is None:
            return True
        try:
            return self._allow(self.get_cache_key(request, view))
        except Exception:  # Redis down: keep serving rather than fail closed
            logger.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True

    def _allow(self, key: str) -> bool:
        now = time.time()
        duration = self.duration
        window = int(now // duration)
        elapsed = (now - window * duration) / duration  # share of this window gone
        batch = batch_size(self.num_requests)
        with _tallies_lock:
            tally = _tallies.get(key)
            if (
                batch > 1
                and tally is not None
                and tally.window == window
                and tally.pending + 1 < batch
                and now - tally.synced_at < SYNC_S
                and tally.before * (1.0 - elapsed) + tally.known + tally.pending + 1
                <= self.num_requests * LOCAL_SHARE
            ):
                tally.pending += 1  # far below the limit: counted here
                return True
            # This request and the ones counted here since the last round trip; those
            # of the window before go to that window's counter.
            add, add_previous = 1, 0
            if tally is not None and tally.window == window:
                add += tally.pending
            elif tally is not None and tally.window == window - 1:
                add_previous = tally.pending
            _tallies.pop(key, None)  # sent (or lost with Redis: counted low, not high)
        current, previous = f"{key}:{window}", f"{key}:{window - 1}"
        count, before = self._counts(current, previous, 2 * duration, add, add_previous)
        estimate = before * (1.0 - elapsed) + count
        allowed = estimate <= self.num_requests
        if not allowed:
            # Refused: a refused request does not use up the budget.
            self._uncount(current)
            count -= 1
            self.wait_s = self._retry_after(before, count, elapsed)
        with _tallies_lock:
            if len(_tallies) > 10_000:  # keys gone quiet
                _tallies.clear()
            _tallies[key] = _Tally(window, count, before, 0, now)
        return allowed

    def _retry_after(self, before: int, count: int, elapsed: float) -> float:
        """Seconds until one more request fits in the window estimate."""
        duration = self.duration
        # before * (1 - elapsed - w/duration) + count <= num_requests - 1
        room = self.num_requests - 1 - count
        if before > 0 and room >= 0:
            wait = (1.0 - elapsed - room / before) * duration
        else:
            wait = (1.0 - elapsed) * duration  # this window's own count must expire
        return min(max(wait, 1.0), float(duration))

    def _counts(
        self, current: str, previous: str, timeout: int, add: int, add_previous: int
    ) -> tuple[int, int]:
        cache = default_cache
        if hasattr(cache, "window_counts"):
            count, before = cache.window_counts(
                current, previous, timeout, add, add_previous
            )
            return count, before
        # Any other cache backend (e.g. local memory in a test): not atomic.
        cache.add(current, 0, timeout)
        if add_previous:
            cache.add(previous, 0, timeout)
            cache.incr(previous, add_previous)
        return cache.incr(current, add), int(cache.get(previous) or 0)

    def _uncount(self, current: str) -> None:
        cache = default_cache
        if hasattr(cache, "window_uncount"):
            cache.window_uncount(current)
        else:
            cache.decr(current)

    def wait(self):
        return math.ceil(self.wait_s) if self.wait_s is not None else None

    def get_rate(self):
        # DRF binds THROTTLE_RATES at import; reading it per request honours
        # override_settings and a settings reload.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        api_key = request_key(request)
        ident = f"key{api_key.pk}" if api_key is not None else f"staff{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
