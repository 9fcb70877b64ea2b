"""Do-nothing views of the serving floor (benchmarks/perf/floor.py), one per layer of
the stack a serving endpoint goes through, each answering the same fixed body, then
the project's own URLs (so `/api/v1/health/` answers as on the real server).

Each layer adds one piece to the one before, so the difference between two adjacent
layers' requests/s is what that piece costs under the same load.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.perf.floor_wsgi import BODY, PAYLOAD


def django_view(request: HttpRequest) -> HttpResponse:
    """Layer 1: Django's request handling and the project's whole MIDDLEWARE."""
    return HttpResponse(BODY, content_type="application/json")


class DrfView(APIView):
    """Layer 2: DRF's request wrapping, content negotiation and JSON rendering, with
    no authentication, permission or throttle (like `/api/v1/health/`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


class DrfAuthView(APIView):
    """Layer 3: plus the project's default authentication (the API key: one prepared
    SQL statement) and permission; no throttle."""

    # A read-only or public key may call it, as the recommendation views allow.
    public_key_allowed = True
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


class DrfAuthThrottleView(APIView):
    """Layer 4: plus the project's default throttle (a Redis round trip per request
    near a key's limit, per batch far below it): the whole fixed cost of an
    authenticated API request before the view does anything."""

    public_key_allowed = True

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


urlpatterns = [
    path("bench-floor/django/", django_view),
    path("bench-floor/drf/", DrfView.as_view()),
    path("bench-floor/drf-auth/", DrfAuthView.as_view()),
    path("bench-floor/drf-auth-throttle/", DrfAuthThrottleView.as_view()),
    path("", include("recsite.urls")),
]
