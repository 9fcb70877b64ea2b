"""Serializers shared by the apps' APIs: the answers of batch endpoints (docs), and
query-string serializers built cheaply per request."""

import copy

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers, status
from rest_framework.response import Response


class RejectedRowSerializer(serializers.Serializer):
    """One rejected row of a batch: its position and field errors."""

    index = serializers.IntegerField(help_text="0-based position in the request list.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='Field errors, e.g. `{"item": ["Unknown item \'x\'."]}`.',
    )


class BulkUpsertResultSerializer(serializers.Serializer):
    """Answer of `POST …/bulk/`: valid rows are stored even when others are rejected."""

    created = serializers.IntegerField(help_text="Distinct ids created.")
    updated = serializers.IntegerField(
        help_text="Distinct ids that existed and were updated."
    )
    accepted = serializers.IntegerField(help_text="Rows stored.")
    rejected = RejectedRowSerializer(many=True)


class BatchRequestErrorSerializer(serializers.Serializer):
    """A body that is not a usable batch (not a list, empty, too many rows)."""

    non_field_errors = serializers.ListField(child=serializers.CharField())


class ErrorDetailSerializer(serializers.Serializer):
    """A request refused as a whole (malformed JSON, text PostgreSQL cannot store)."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False)


def batch_400(result_serializer, component_name: str) -> PolymorphicProxySerializer:
    """The 400 answers of a batch endpoint: every row rejected, or the body refused."""
    return PolymorphicProxySerializer(
        component_name=component_name,
        serializers=[
            result_serializer,
            BatchRequestErrorSerializer,
            ErrorDetailSerializer,
        ],
        resource_type_field_name=None,
    )


def attributes_field(**kwargs) -> serializers.DictField:
    """Documented field for the flat `attributes` object."""
    kwargs.setdefault(
        "help_text",
        "Flat JSON object: values are strings, finite numbers, booleans or lists of "
        "strings (at most 100 keys; nested objects and nulls are rejected).",
    )
    return serializers.DictField(child=serializers.JSONField(), **kwargs)


ATTRIBUTE_FILTER_INVALID = "Use `name:value`, e.g. `country:FR`."


class AttributeFilterField(serializers.CharField):
    """`name:value` from the query string, parsed to a `(name, value)` pair."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        name, colon, value = text.partition(":")
        if not colon or not name:
            raise serializers.ValidationError(ATTRIBUTE_FILTER_INVALID)
        return name, value


def attribute_filter_field() -> serializers.ListField:
    """Repeatable `attribute=name:value` query parameter."""
    return serializers.ListField(
        child=AttributeFilterField(max_length=1000),
        required=False,
        help_text=(
            "`name:value`, repeatable (all must match): the attribute equals the "
            "value (as a string, or as the number/boolean it spells) or is a list "
            "containing it."
        ),
    )


def query_filters(serializer_class: type[serializers.Serializer], request) -> dict:
    """Validate the query string with a filter serializer (400 on bad values)."""
    params = request.query_params
    data = {}
    for name, field in serializer_class().fields.items():
        if isinstance(field, serializers.ListField):
            if values := params.getlist(name):
                data[name] = values
        elif name in params:
            data[name] = params[name]
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def bulk_upsert_response(result, *, rows: int):
    """201 with an UpsertResult's counts; 400 (same body) when no row was valid."""
    body = {
        "created": result.created,
        "updated": result.updated,
        "accepted": result.accepted,
        "rejected": result.rejected,
    }
    all_rejected = len(result.rejected) == rows
    return Response(
        body,
        status=status.HTTP_400_BAD_REQUEST if all_rejected else status.HTTP_201_CREATED,
    )


class ExternalIdViewSetMixin:
    """Detail routes addressed by the client's own id (`/users/{id}/`, `/items/{id}/`).

    Subclasses name the selector that fetches one row by external id and the 404
    message; the list goes through `list_selector` with the parsed query filters.
    """

    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"  # ids may not contain "/" (recsite.validation)
    filter_serializer: type[serializers.Serializer]
    not_found_message: str

    def fetch_one(self, external_id: str):
        """The row with this external id, or None."""
        raise NotImplementedError

    def list_queryset(self, **filters):
        """The list selector's queryset for these filters."""
        raise NotImplementedError

    def get_queryset(self):
        if self.action == "list":
            filters = query_filters(self.filter_serializer, self.request)
            filters["attributes"] = filters.pop("attribute", ())
            return self.list_queryset(**filters)
        return self.serializer_class.Meta.model.objects.all()

    def get_object(self):
        from django.http import Http404

        row = self.fetch_one(self.kwargs[self.lookup_url_kwarg])
        if row is None:
            raise Http404(self.not_found_message)
        return row


class PrototypeFieldsSerializer(serializers.Serializer):
    """A serializer whose flat fields are copied from prototypes built once per class.

    DRF deep-copies every declared field for each instance, which re-runs each
    field's `__init__`: 0.2-0.3 ms for a query string of 8 parameters, on every
    request of the recommendation endpoints. A flat field (no child field, not a
    serializer) holds no state but its binding, which `bind()` sets on the copy,
    so a shallow copy of an unbound prototype is enough; the others are still deep
    copies.
    """

    _NESTED = (
        serializers.ListField,
        serializers.DictField,
        serializers.BaseSerializer,
        serializers.ManyRelatedField,
    )

    def get_fields(self):
        cls = type(self)
        prototypes = cls.__dict__.get("_field_prototypes")
        if prototypes is None:
            prototypes = super().get_fields()
            cls._field_prototypes = prototypes
        return {
            name: copy.deepcopy(field)
            if isinstance(field, self._NESTED)
            else copy.copy(field)
            for name, field in prototypes.items()
        }
