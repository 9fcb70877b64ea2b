"""The project's URLs plus views that fail on purpose (tests of error pages only)."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from recsite.urls import urlpatterns as project_urlpatterns

BOOM = "secret-detail-that-must-not-leak"


def boom_page(request):
    raise RuntimeError(BOOM)


class BoomApiView(APIView):
    """Uses the project's default authentication, permission and throttle classes."""

    def get(self, request):
        raise RuntimeError(BOOM)

    def post(self, request):
        return Response({"received": request.data})


class EchoApiView(APIView):
    """A read endpoint with the project's defaults (auth, permissions, throttling)."""

    def get(self, request):
        return Response({"ok": True})


class PublicEchoApiView(EchoApiView):
    """Opts in to public (browser) keys, like the recommendation endpoints."""

    public_key_allowed = True


urlpatterns = [
    path("boom/", boom_page),
    path("api/v1/test-boom/", BoomApiView.as_view()),
    path("api/v1/test-echo/", EchoApiView.as_view()),
    path("api/v1/test-public-echo/", PublicEchoApiView.as_view()),
    *project_urlpatterns,
]
