"""Recommendation endpoints: for a user, similar items, popular, and sessions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from recommendations import serving
from recsite.serializers import PrototypeFieldsSerializer

MAX_OFFSET = 1000
MAX_EXCLUDE = 500
MAX_SESSION_ITEMS = 200
MAX_ID_LENGTH = 255
MAX_WINDOW = timedelta(days=365)
WINDOW_RE = re.compile(r"^(\d{1,5})([hdw])$")
WINDOW_UNITS = {"h": "hours", "d": "days", "w": "weeks"}

ITEM_NOT_FOUND = "No item with this id."
EXCLUDE_TOO_MANY = f"Exclude at most {MAX_EXCLUDE} item ids."
ID_TOO_LONG = f"Item ids have at most {MAX_ID_LENGTH} characters."
WINDOW_INVALID = (
    "Use a number and a unit: h, d or w (e.g. 24h, 7d, 2w), at most 365 days."
)
STRATEGIES = ("personalized", "cold_user", "popular", "session", "content")


def _max_n() -> int:
    return int(settings.RECSITE.get("MAX_RECOMMENDATIONS", 100))


# ------------------------------------------------------------------ input


@extend_schema_field(OpenApiTypes.STR)
class _ExcludeField(serializers.Field):
    """Comma-separated item ids in a query string, or a list in a JSON body."""

    default_error_messages = {
        "too_many": EXCLUDE_TOO_MANY,
        "too_long": ID_TOO_LONG,
        "invalid": "Expected comma-separated ids or a list of ids.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            ids = [part.strip() for part in data.split(",")]
        elif isinstance(data, list) and all(isinstance(x, str) for x in data):
            ids = [x.strip() for x in data]
        else:
            self.fail("invalid")
        ids = [i for i in ids if i]
        if len(ids) > MAX_EXCLUDE:
            self.fail("too_many")
        if any(len(i) > MAX_ID_LENGTH for i in ids):
            self.fail("too_long")
        return list(dict.fromkeys(ids))

    def to_representation(self, value):
        return ",".join(value)


class ListQuerySerializer(PrototypeFieldsSerializer):
    """Paging, filters and diversity shared by every recommendation endpoint."""

    n = serializers.IntegerField(
        min_value=1, max_value=100, default=10, help_text="How many items (1-100)."
    )
    offset = serializers.IntegerField(
        min_value=0,
        max_value=MAX_OFFSET,
        default=0,
        help_text="Skip this many (paging).",
    )
    category = serializers.CharField(
        required=False,
        max_length=MAX_ID_LENGTH,
        help_text="Only items in this category.",
    )
    tag = serializers.CharField(
        required=False, max_length=MAX_ID_LENGTH, help_text="Only items with this tag."
    )
    exclude = _ExcludeField(
        required=False,
        default=list,
        help_text=f"Comma-separated item ids never to return (at most {MAX_EXCLUDE}).",
    )
    max_per_category = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        help_text="Diversity: at most this many items per category.",
    )

    def validate_n(self, value: int) -> int:
        if value > _max_n():
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {_max_n()}."
            )
        return value

    def options(self) -> dict:
        """Keyword arguments for the serving functions."""
        return list_options(self.validated_data)


def list_options(data: dict) -> dict:
    """The serving functions' keyword arguments from a valid list query."""
    return {
        "n": data["n"],
        "offset": data["offset"],
        "category": data.get("category"),
        "tag": data.get("tag"),
        "exclude": data.get("exclude") or [],
        "max_per_category": data.get("max_per_category"),
    }


class UserRecommendationQuerySerializer(ListQuerySerializer):
    include_seen = serializers.BooleanField(
        default=False, help_text="Keep items the user already interacted with."
    )


class SimilarQuerySerializer(ListQuerySerializer):
    user = serializers.CharField(
        required=False,
        max_length=MAX_ID_LENGTH,
        help_text="Personalise the list for this user id (optional).",
    )


class PopularQuerySerializer(ListQuerySerializer):
    window = serializers.CharField(
        required=False,
        max_length=8,
        help_text="Count only interactions this recent: e.g. 24h, 7d, 2w. "
        "Default: all time (the active model's popularity).",
    )
    trending = serializers.BooleanField(
        default=False,
        help_text="Time-decayed popularity (half-life = window / 7; default 7d).",
    )

    def validate_window(self, value: str) -> timedelta:
        match = WINDOW_RE.match(value.strip())
        if not match:
            raise serializers.ValidationError(WINDOW_INVALID)
        window = timedelta(**{WINDOW_UNITS[match.group(2)]: int(match.group(1))})
        if window <= timedelta(0) or window > MAX_WINDOW:
            raise serializers.ValidationError(WINDOW_INVALID)
        return window


class SessionBodySerializer(ListQuerySerializer):
    items = serializers.ListField(
        child=serializers.CharField(max_length=MAX_ID_LENGTH),
        max_length=MAX_SESSION_ITEMS,
        allow_empty=True,
        help_text="Item ids the visitor interacted with in this session, oldest first. "
        "Unknown ids are ignored and listed in `ignored_items`.",
    )
    exclude = serializers.ListField(
        child=serializers.CharField(max_length=MAX_ID_LENGTH),
        max_length=MAX_EXCLUDE,
        required=False,
        default=list,
        help_text="Item ids never to return.",
    )


# ------------------------------------------------------------------ output


class RecommendedItemSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The item's id.")
    score = serializers.FloatField(
        help_text="Higher is better; comparable within one list."
    )
    title = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField(
        help_text="Why it was recommended, as a short sentence."
    )


# The views are `list` actions (one route per nested URL) but answer one object.
@extend_schema_serializer(many=False)
class RecommendationListSerializer(serializers.Serializer):
    items = RecommendedItemSerializer(many=True)
    model_version = serializers.IntegerField(
        allow_null=True,
        help_text="The model version that scored the list (null: none).",
    )
    strategy = serializers.ChoiceField(choices=STRATEGIES)
    recommendation_id = serializers.UUIDField(
        help_text="Send it back with interactions to attribute them to this list."
    )


@extend_schema_serializer(many=False)
class SessionRecommendationListSerializer(RecommendationListSerializer):
    ignored_items = serializers.ListField(
        child=serializers.CharField(), help_text="Session item ids that do not exist."
    )


def _payload(
    response: serving.RecommendationResponse, *, session: bool = False
) -> dict:
    body = {
        "items": [
            {
                "id": i.id,
                "score": i.score,
                "title": i.title,
                "categories": i.categories,
                "reason": i.reason,
            }
            for i in response.items
        ],
        "model_version": response.model_version,
        "strategy": response.strategy,
        "recommendation_id": str(response.recommendation_id),
    }
    if session:
        body["ignored_items"] = response.ignored_items
    return body


@dataclass(frozen=True)
class _ParsedQuery:
    """A valid query string's validated data (what the views read of a serializer)."""

    validated_data: dict

    def options(self) -> dict:
        return list_options(self.validated_data)


# Valid query strings already parsed, per serializer class and request limit: the
# recommendation endpoints are called again and again with the same few query
# strings (`?n=10`), and validating one costs more than a tenth of the request.
# Only valid strings are kept (errors are raised each time, as before); bounded.
_parsed: dict[tuple, _ParsedQuery] = {}
PARSED_QUERIES_MAX = 1024


def _query(serializer_class, request) -> _ParsedQuery:
    key = (serializer_class, request.META.get("QUERY_STRING", ""), _max_n())
    parsed = _parsed.get(key)
    if parsed is None:
        serializer = serializer_class(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        parsed = _ParsedQuery(validated_data=serializer.validated_data)
        if len(_parsed) >= PARSED_QUERIES_MAX:
            _parsed.clear()  # many distinct strings (exclude lists): start again
        _parsed[key] = parsed
    # A copy per request: the serving functions get lists they may keep or change.
    data = {
        name: list(value) if isinstance(value, list) else value
        for name, value in parsed.validated_data.items()
    }
    return _ParsedQuery(validated_data=data)


_BAD_INPUT = OpenApiResponse(
    description='Invalid parameters: `{"field": ["message"]}`.'
)

# ------------------------------------------------------------------ views


class UserRecommendationViewSet(viewsets.ViewSet):
    """`GET /api/v1/users/{user_id}/recommendations/`."""

    public_key_allowed = True

    @extend_schema(
        operation_id="user_recommendations",
        summary="Recommendations for a user",
        description=(
            "Personalised items for one user, best first. Items the user already "
            "interacted with are left out unless `include_seen=true`; recent "
            "interactions count at once (no retraining needed).\n\n"
            "Fallbacks (never an error): a user the model has not seen yet is scored "
            "from their recent interactions, else from their attributes (strategy "
            "`cold_user`); an id that does not exist, or a user with neither, gets "
            "popular items with status 200 and strategy `popular`. Without any "
            "trained model, popular items are computed from the interactions."
        ),
        parameters=[
            OpenApiParameter(
                "user_id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The user's id.",
            ),
            UserRecommendationQuerySerializer,
        ],
        responses={200: RecommendationListSerializer, 400: _BAD_INPUT},
        tags=["recommendations"],
    )
    def list(self, request, user_id: str):
        query = _query(UserRecommendationQuerySerializer, request)
        result = serving.recommend_for_user(
            user_external_id=user_id,
            include_seen=query.validated_data["include_seen"],
            **query.options(),
        )
        return Response(_payload(result))


class SimilarItemViewSet(viewsets.ViewSet):
    """`GET /api/v1/items/{item_id}/similar/`."""

    public_key_allowed = True

    @extend_schema(
        operation_id="item_similar",
        summary="Items similar to an item",
        description=(
            "Items like this one, best first (strategy `content`): from the trained "
            "embeddings and co-interactions for known items, from the metadata (title, "
            "description, categories, tags, attributes) for items added since the last "
            "training. `user=` adds that user's taste. 404 when the item does not "
            "exist."
        ),
        parameters=[
            OpenApiParameter(
                "item_id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The item's id.",
            ),
            SimilarQuerySerializer,
        ],
        responses={
            200: RecommendationListSerializer,
            400: _BAD_INPUT,
            404: OpenApiResponse(description=ITEM_NOT_FOUND),
        },
        tags=["recommendations"],
    )
    def list(self, request, item_id: str):
        query = _query(SimilarQuerySerializer, request)
        try:
            result = serving.similar_items(
                item_external_id=item_id,
                user_external_id=query.validated_data.get("user"),
                **query.options(),
            )
        except serving.ItemNotFound as exc:
            raise NotFound(ITEM_NOT_FOUND) from exc
        return Response(_payload(result))


class PopularViewSet(viewsets.ViewSet):
    """`GET /api/v1/recommendations/popular/`."""

    public_key_allowed = True

    @extend_schema(
        operation_id="recommendations_popular",
        summary="Popular items",
        description=(
            "Most interacted-with items (strategy `popular`). Without `window` and "
            "`trending`, the active model's popularity; with `window` (e.g. `24h`, "
            "`7d`) counts only recent interactions; `trending=true` weighs each "
            "interaction by 2^(-age / (window / 7)), window 7d by default."
        ),
        parameters=[PopularQuerySerializer],
        responses={200: RecommendationListSerializer, 400: _BAD_INPUT},
        tags=["recommendations"],
    )
    def list(self, request):
        query = _query(PopularQuerySerializer, request)
        result = serving.popular_items(
            window=query.validated_data.get("window"),
            trending=query.validated_data["trending"],
            **query.options(),
        )
        return Response(_payload(result))


class SessionViewSet(viewsets.ViewSet):
    """`POST /api/v1/recommendations/session/`."""

    public_key_allowed = True

    @extend_schema(
        operation_id="recommendations_session",
        summary="Recommendations for an anonymous session",
        description=(
            "Items for a visitor without an account, from the items they interacted "
            "with in this session (strategy `session`). The session's own items are "
            "not returned. Unknown item ids are ignored and listed in "
            "`ignored_items`; with no known item the list is popular items."
        ),
        request=SessionBodySerializer,
        responses={200: SessionRecommendationListSerializer, 400: _BAD_INPUT},
        tags=["recommendations"],
    )
    def create(self, request):
        body = SessionBodySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = serving.session_recommendations(
            item_external_ids=body.validated_data["items"], **body.options()
        )
        return Response(_payload(result, session=True), status=status.HTTP_200_OK)
