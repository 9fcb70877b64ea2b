"""Production settings: base.py with HTTPS defaults (`check --deploy` is clean).

Use `DJANGO_SETTINGS_MODULE=recsite.settings.production` behind TLS. base.py keeps
plain-HTTP defaults so `./start.sh` works on http://127.0.0.1 without a certificate.
Every default below can still be overridden from the environment, e.g. behind a
proxy that already redirects to HTTPS: `SECURE_SSL_REDIRECT=0`.
"""

from .base import *  # noqa: F401,F403
from .base import DEBUG, env_bool, env_int

# The TLS-terminating proxy sets X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER in base).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Health probes from the orchestrator speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
