"""`POST /api/v1/interactions/`: record one interaction or a batch of up to 10,000."""

from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from recommendations.models import Interaction
from recommendations.services.interactions import MAX_FUTURE_S, interaction_record_many
from recsite.serializers import RejectedRowSerializer, batch_400
from recsite.validation import NON_FIELD_ERRORS, batch_error


class InteractionInSerializer(serializers.Serializer):
    """One interaction as sent (docs only: `interaction_rows_clean` validates)."""

    user = serializers.CharField(
        max_length=255, help_text="End-user id; an unknown user is created."
    )
    item = serializers.CharField(max_length=255, help_text="Item id (must exist).")
    type = serializers.CharField(
        help_text="Interaction type name, e.g. view, click, like, purchase, rating."
    )
    value = serializers.FloatField(
        required=False, allow_null=True, help_text="Optional number, e.g. a rating."
    )
    timestamp = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=(
            "ISO 8601 (naive = UTC) or unix seconds; default now; at most "
            f"{int(MAX_FUTURE_S // 3600)} h in the future."
        ),
    )
    event_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=255,
        help_text="Idempotency key: a row whose event_id is stored is a duplicate.",
    )
    recommendation_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The `recommendation_id` of the response that showed the item.",
    )


class InteractionBatchResultSerializer(serializers.Serializer):
    """Answer to a batch: valid rows are stored even when others are rejected."""

    accepted = serializers.IntegerField(help_text="Rows stored now.")
    duplicates = serializers.IntegerField(
        help_text="Rows not stored because their event_id already was (or repeats)."
    )
    rejected = RejectedRowSerializer(many=True)


class InteractionSerializer(serializers.ModelSerializer):
    """One stored interaction, as in a user's history."""

    item = serializers.CharField(source="item.external_id", read_only=True)
    type = serializers.CharField(source="type.name", read_only=True)

    class Meta:
        model = Interaction
        fields = [
            "item",
            "type",
            "value",
            "timestamp",
            "event_id",
            "recommendation_id",
            "created_at",
        ]
        read_only_fields = fields


_one_or_many = PolymorphicProxySerializer(
    component_name="InteractionOneOrMany",
    serializers=[InteractionInSerializer, InteractionInSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


class InteractionViewSet(viewsets.GenericViewSet):
    """Record interactions (write and public keys)."""

    public_key_allowed = True  # browsers report what their user did
    serializer_class = InteractionInSerializer
    pagination_class = None

    @extend_schema(
        summary="Record interactions",
        description=(
            "Send one object or a list of up to 10,000. Each row is validated alone: "
            "valid rows are stored and the answer is **201** with the indexes and "
            "field errors of rejected rows (unknown item or type, bad value or "
            "timestamp). When every row is rejected the answer is **400** with the "
            "same body. Unknown users are created. A row whose `event_id` is already "
            "stored, or repeats an earlier row, is counted in `duplicates` and not "
            "stored again, so a retried batch is safe."
        ),
        request=_one_or_many,
        responses={
            201: InteractionBatchResultSerializer,
            400: batch_400(InteractionBatchResultSerializer, "InteractionBatchError"),
        },
        examples=[
            OpenApiExample(
                "Batch",
                request_only=True,
                value=[
                    {"user": "u1", "item": "i1", "type": "view", "event_id": "e-1"},
                    {
                        "user": "u1",
                        "item": "i2",
                        "type": "rating",
                        "value": 4.5,
                        "timestamp": "2025-01-31T12:00:00Z",
                    },
                ],
            ),
            OpenApiExample(
                "Partly rejected",
                response_only=True,
                status_codes=["201"],
                value={
                    "accepted": 1,
                    "duplicates": 0,
                    "rejected": [
                        {"index": 1, "errors": {"item": ["Unknown item 'i2'."]}}
                    ],
                },
            ),
        ],
    )
    def create(self, request):
        data = request.data
        if isinstance(data, dict):
            rows = [data]
        else:
            if error := batch_error(data, allow_object=True):
                raise ValidationError({NON_FIELD_ERRORS: [error]})
            rows = data
        result = interaction_record_many(rows=rows)
        body = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
        }
        all_rejected = len(result.rejected) == len(rows)
        return Response(
            body,
            status=status.HTTP_400_BAD_REQUEST
            if all_rejected
            else status.HTTP_201_CREATED,
        )
