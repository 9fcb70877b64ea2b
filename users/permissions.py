"""Which key kinds may do what.

- write: everything.
- read_only: safe methods only (403 on writes).
- public: only views that opt in with `public_key_allowed = True` (or list the
  action in `public_key_actions`): fetching recommendations, posting interactions.
- a logged-in staff user (Django admin session): everything.
"""

from rest_framework import permissions

from users.models import ApiKey

READ_ONLY_KEY = "This API key is read-only."
PUBLIC_KEY = "A public API key may only fetch recommendations and post interactions."


def request_key(request) -> ApiKey | None:
    """The ApiKey a request was authenticated with, if any."""
    return request.auth if isinstance(request.auth, ApiKey) else None


class ApiKeyPermission(permissions.BasePermission):
    """401 without credentials; 403 when the key kind may not do this."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is not None and getattr(user, "is_staff", False) and user.is_active:
            return True
        api_key = request_key(request)
        if api_key is None:
            return False  # DRF turns this into 401 (the authenticator has a header)
        if api_key.kind == ApiKey.Kind.WRITE:
            return True
        if api_key.kind == ApiKey.Kind.READ_ONLY:
            if request.method in permissions.SAFE_METHODS:
                return True
            self.message = READ_ONLY_KEY
            return False
        # public key
        action = getattr(view, "action", None)
        if getattr(view, "public_key_allowed", False) or action in getattr(
            view, "public_key_actions", ()
        ):
            return True
        self.message = PUBLIC_KEY
        return False
