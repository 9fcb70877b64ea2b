"""`/api/v1/items/`: the catalog, addressed by the client's item ids."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from items.models import Item
from items.selectors import item_get, item_list
from items.services import (
    MAX_DESCRIPTION_LENGTH,
    MAX_TITLE_LENGTH,
    item_create,
    item_data_clean,
    item_delete,
    item_update,
    item_upsert_many,
)
from recsite.serializers import (
    BulkUpsertResultSerializer,
    ExternalIdViewSetMixin,
    PrototypeFieldsSerializer,
    attribute_filter_field,
    attributes_field,
    batch_400,
    bulk_upsert_response,
)
from recsite.validation import MAX_LABEL_LENGTH, NON_FIELD_ERRORS, batch_error

ITEM_NOT_FOUND = "No item with this id."

ID_PARAMETER = OpenApiParameter(
    "id",
    str,
    OpenApiParameter.PATH,
    description="The item's id in your application (percent-encoded; no `/`).",
)


class ItemSerializer(PrototypeFieldsSerializer, serializers.ModelSerializer):
    """An item as returned; categories and tags are names (alphabetical).

    Items come from `items.selectors` with their label names read in the same
    query; the fields are built from the model once per class, not per response.
    """

    id = serializers.CharField(source="external_id", read_only=True)
    categories = serializers.ListField(
        child=serializers.CharField(), source="category_names", read_only=True
    )
    tags = serializers.ListField(
        child=serializers.CharField(), source="tag_names", read_only=True
    )
    attributes = attributes_field(read_only=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "title",
            "description",
            "categories",
            "tags",
            "attributes",
            "is_hidden",
            "available_from",
            "available_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


def _labels_field(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=MAX_LABEL_LENGTH),
        required=False,
        max_length=100,
        help_text=help_text,
    )


class ItemWriteSerializer(serializers.Serializer):
    """An item as sent (documentation: validation is `items.services.ITEM_ROW`)."""

    id = serializers.CharField(max_length=255)
    title = serializers.CharField(
        max_length=MAX_TITLE_LENGTH, required=False, allow_blank=True
    )
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_LENGTH, required=False, allow_blank=True
    )
    categories = _labels_field(
        "Category names (created when new); replace the stored ones."
    )
    tags = _labels_field("Tag names (created when new); replace the stored ones.")
    attributes = attributes_field(
        required=False, help_text="Replaces the stored attributes when given."
    )
    is_hidden = serializers.BooleanField(
        required=False,
        help_text="Hidden items are never recommended (takes effect at once).",
    )
    available_from = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601 or unix seconds."
    )
    available_until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="ISO 8601 or unix seconds; later than available_from.",
    )


class ItemUpdateSerializer(ItemWriteSerializer):
    """A PATCH of an item: fields sent replace the stored ones, others are kept."""

    id = serializers.CharField(
        max_length=255, required=False, help_text="May be sent, but not changed."
    )


class ItemFilterSerializer(serializers.Serializer):
    """Query parameters of the item list."""

    id_prefix = serializers.CharField(
        required=False, max_length=255, help_text="Ids starting with this text."
    )
    category = serializers.CharField(required=False, help_text="Has this category.")
    tag = serializers.CharField(required=False, help_text="Has this tag.")
    hidden = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Hidden or not."
    )
    search = serializers.CharField(
        required=False, max_length=200, help_text="Title contains (case-insensitive)."
    )
    available_now = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Inside (true) or outside (false) the availability window now.",
    )
    created_after = serializers.DateTimeField(required=False)
    attribute = attribute_filter_field()


@extend_schema_view(
    list=extend_schema(summary="List items", parameters=[ItemFilterSerializer]),
    retrieve=extend_schema(summary="Get an item", parameters=[ID_PARAMETER]),
)
class ItemViewSet(
    ExternalIdViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """The catalog, addressed by item ids of your application."""

    serializer_class = ItemSerializer
    filter_serializer = ItemFilterSerializer
    not_found_message = ITEM_NOT_FOUND

    def fetch_one(self, external_id: str):
        return item_get(external_id=external_id)

    def list_queryset(self, **filters):
        return item_list(**filters)

    def _out(self, item: Item) -> dict:
        # Re-read with labels prefetched: the answer shows what is stored.
        return ItemSerializer(item_get(external_id=item.external_id)).data

    @extend_schema(
        summary="Create an item",
        request=ItemWriteSerializer,
        responses={201: ItemSerializer},
    )
    def create(self, request):
        item = item_create(**item_data_clean(request.data))
        return Response(self._out(item), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Update an item (e.g. hide it)",
        parameters=[ID_PARAMETER],
        request=ItemUpdateSerializer,
        responses={200: ItemSerializer},
    )
    def partial_update(self, request, id=None):
        item = self.get_object()
        item = item_update(item=item, **item_data_clean(request.data, item=item))
        return Response(self._out(item))

    @extend_schema(
        summary="Delete an item and its interactions",
        parameters=[ID_PARAMETER],
        responses={204: None},
    )
    def destroy(self, request, id=None):
        item_delete(item=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create or update up to 10,000 items",
        description=(
            "Upsert by id. Fields a row omits keep their stored value on an existing "
            "item; `categories`, `tags` and `attributes` replace the stored ones when "
            "given (categories and tags are created on the fly). Invalid rows are "
            "rejected alone (201 with their indexes and errors); 400 when every row "
            "is. When an id repeats, later rows win field by field."
        ),
        request=ItemWriteSerializer(many=True),
        responses={
            201: BulkUpsertResultSerializer,
            400: batch_400(BulkUpsertResultSerializer, "ItemBulkError"),
        },
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request):
        if error := batch_error(request.data):
            raise ValidationError({NON_FIELD_ERRORS: [error]})
        result = item_upsert_many(rows=request.data)
        return bulk_upsert_response(result, rows=len(request.data))
