"""Per-key request throttling, rate by key kind (settings: THROTTLE_*).

A sliding-window counter in Redis: one pipelined round trip per request (INCR this
window's counter, read the previous window's), O(1) whatever the rate. The estimate
is `previous × (share of the previous window still inside the last `duration`
seconds) + current`, the usual approximation of a true sliding window (it assumes
the previous window's requests were evenly spread).

DRF's stock `SimpleRateThrottle` keeps the timestamp of every request of the window
in one cache entry and reads and rewrites the whole list on every request: at
6,000/min that is up to 48 KB pickled, sent and unpickled twice per request.
"""

from __future__ import annotations

import logging
import math
import time

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from users.permissions import request_key

logger = logging.getLogger(__name__)


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
        current, previous = f"{key}:{window}", f"{key}:{window - 1}"
        count, before = self._counts(current, previous, 2 * duration)
        elapsed = (now - window * duration) / duration  # share of this window gone
        estimate = before * (1.0 - elapsed) + count
        if estimate <= self.num_requests:
            return True
        # Refused: a refused request does not use up the budget.
        self._uncount(current)
        self.wait_s = self._retry_after(before, count - 1, elapsed)
        return False

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

    def _counts(self, current: str, previous: str, timeout: int) -> tuple[int, int]:
        cache = default_cache
        if hasattr(cache, "window_counts"):
            count, before = cache.window_counts(current, previous, timeout)
            return count, before
        # Any other cache backend (e.g. local memory in a test): not atomic.
        cache.add(current, 0, timeout)
        return cache.incr(current), int(cache.get(previous) or 0)

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
