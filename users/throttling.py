"""Per-key request throttling, rate by key kind (settings: THROTTLE_*)."""

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from users.permissions import request_key

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Counts requests per API key (or per staff user) in the shared Redis cache."""

    scope = "write"

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
        try:
            return super().allow_request(request, view)
        except Exception:  # Redis down: keep serving rather than fail closed
            logger.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True

    def get_rate(self):
        # DRF binds THROTTLE_RATES at import; reading it per request honours
        # override_settings and a settings reload.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        api_key = request_key(request)
        ident = f"key{api_key.pk}" if api_key is not None else f"staff{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
