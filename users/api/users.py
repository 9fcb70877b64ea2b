"""`/api/v1/users/`: end-users by their client id, their attributes and history."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from recommendations.api.interactions import InteractionSerializer
from recommendations.selectors.interactions import interaction_list_for_user
from recsite.serializers import (
    BulkUpsertResultSerializer,
    ExternalIdViewSetMixin,
    PrototypeFieldsSerializer,
    attribute_filter_field,
    attributes_field,
    batch_400,
    bulk_upsert_response,
)
from recsite.validation import NON_FIELD_ERRORS, batch_error
from users.models import EndUser
from users.selectors import user_get, user_list
from users.services import (
    user_create,
    user_data_clean,
    user_delete,
    user_update,
    user_upsert_many,
)

USER_NOT_FOUND = "No end-user with this id."

ID_PARAMETER = OpenApiParameter(
    "id",
    str,
    OpenApiParameter.PATH,
    description="The end-user's id in your application (percent-encoded; no `/`).",
)


class UserSerializer(PrototypeFieldsSerializer, serializers.ModelSerializer):
    """An end-user as returned (fields built from the model once per class)."""

    id = serializers.CharField(source="external_id", read_only=True)
    attributes = attributes_field(read_only=True)

    class Meta:
        model = EndUser
        fields = ["id", "attributes", "created_at", "updated_at"]
        read_only_fields = fields


class UserCreateSerializer(serializers.Serializer):
    """An end-user as sent (documentation: validation is `users.services.USER_ROW`)."""

    id = serializers.CharField(max_length=255)
    attributes = attributes_field(required=False)


class UserUpdateSerializer(serializers.Serializer):
    """A PATCH of an end-user: `attributes` REPLACES the stored object."""

    attributes = attributes_field(
        required=False,
        help_text=(
            "Replaces all the stored attributes (send the whole object). Values are "
            "strings, finite numbers, booleans or lists of strings."
        ),
    )


class UserFilterSerializer(serializers.Serializer):
    """Query parameters of the user list."""

    id_prefix = serializers.CharField(
        required=False, max_length=255, help_text="Ids starting with this text."
    )
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    attribute = attribute_filter_field()


@extend_schema_view(
    list=extend_schema(summary="List end-users", parameters=[UserFilterSerializer]),
    retrieve=extend_schema(summary="Get an end-user", parameters=[ID_PARAMETER]),
)
class UserViewSet(
    ExternalIdViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """End-users, addressed by their id in your application."""

    serializer_class = UserSerializer
    filter_serializer = UserFilterSerializer
    not_found_message = USER_NOT_FOUND

    def fetch_one(self, external_id: str):
        return user_get(external_id=external_id)

    def list_queryset(self, **filters):
        return user_list(**filters)

    @extend_schema(
        summary="Create an end-user",
        request=UserCreateSerializer,
        responses={201: UserSerializer},
    )
    def create(self, request):
        user = user_create(**user_data_clean(request.data))
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Update an end-user",
        parameters=[ID_PARAMETER],
        request=UserUpdateSerializer,
        responses={200: UserSerializer},
    )
    def partial_update(self, request, id=None):
        user = self.get_object()
        user = user_update(user=user, **user_data_clean(request.data, user=user))
        return Response(UserSerializer(user).data)

    @extend_schema(
        summary="Delete an end-user and their interactions",
        parameters=[ID_PARAMETER],
        responses={204: None},
    )
    def destroy(self, request, id=None):
        user_delete(user=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create or update up to 10,000 end-users",
        description=(
            "Upsert by id. A row's `attributes`, when given, replaces the stored "
            "object; without it an existing user's attributes are kept. Invalid rows "
            "are rejected alone (201 with their indexes and errors); 400 when every "
            "row is. When an id repeats, later rows win."
        ),
        request=UserCreateSerializer(many=True),
        responses={
            201: BulkUpsertResultSerializer,
            400: batch_400(BulkUpsertResultSerializer, "UserBulkError"),
        },
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request):
        if error := batch_error(request.data):
            raise ValidationError({NON_FIELD_ERRORS: [error]})
        result = user_upsert_many(rows=request.data)
        return bulk_upsert_response(result, rows=len(request.data))

    @extend_schema(
        summary="An end-user's interactions, newest first",
        parameters=[ID_PARAMETER],
        responses=InteractionSerializer(many=True),
    )
    @action(detail=True, methods=["get"], url_path="interactions")
    def interactions(self, request, id=None):
        history = interaction_list_for_user(user=self.get_object())
        page = self.paginate_queryset(history)
        return self.get_paginated_response(InteractionSerializer(page, many=True).data)
