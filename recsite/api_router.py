"""The one router of the versioned REST API (`/api/v1/`)."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from items.api.items import ItemViewSet
from recommendations.api.imports import ImportJobViewSet
from recommendations.api.models import ModelVersionViewSet
from recommendations.api.recommendations import (
    PopularViewSet,
    SessionViewSet,
    SimilarItemViewSet,
    UserRecommendationViewSet,
)
from recommendations.api.interactions import InteractionViewSet
from recsite.health import HealthView
from users.api.users import UserViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False

# Each app registers its viewsets here.
# router.register("users", UserViewSet, basename="user")
router.register("users", UserViewSet, basename="user")
router.register("items", ItemViewSet, basename="item")
router.register("interactions", InteractionViewSet, basename="interaction")
router.register("imports", ImportJobViewSet, basename="import-job")
router.register("models", ModelVersionViewSet, basename="model-version")
router.register(
    r"users/(?P<user_id>[^/]+)/recommendations",
    UserRecommendationViewSet,
    basename="user-recommendations",
)
router.register(r"items/(?P<item_id>[^/]+)/similar", SimilarItemViewSet, basename="item-similar")
router.register("recommendations/popular", PopularViewSet, basename="recommendations-popular")
router.register("recommendations/session", SessionViewSet, basename="recommendations-session")

urlpatterns = [
    path("health/", HealthView.as_view(), name="health"),
    *router.urls,
]
