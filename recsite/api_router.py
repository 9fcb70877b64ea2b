"""The one router of the versioned REST API (`/api/v1/`)."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from recommendations.api.imports import ImportJobViewSet
from recsite.health import HealthView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False

# Each app registers its viewsets here.
# router.register("users", UserViewSet, basename="user")
router.register("imports", ImportJobViewSet, basename="import-job")

urlpatterns = [
    path("health/", HealthView.as_view(), name="health"),
    *router.urls,
]
