"""`/api/v1/imports/`: upload a CSV or JSON-lines file; follow its background import."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from recommendations.models import ImportJob
from recommendations.selectors.imports import import_job_detail, import_job_list
from recommendations.services.imports import (
    FILE_TOO_LARGE,
    ImportFormatError,
    import_format_for,
    import_job_create,
)
from users.models import ApiKey
from users.permissions import request_key

WRITE_KEY_ONLY = "Imports need a read-write API key."


class WriteKeyOnly(BasePermission):
    """Write keys (or staff) only: uploads, and reports that echo the data."""

    message = WRITE_KEY_ONLY

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is not None and getattr(user, "is_staff", False) and user.is_active:
            return True
        api_key = request_key(request)
        return api_key is not None and api_key.kind == ApiKey.Kind.WRITE


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "file_too_large"


class ImportJobCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ImportJob.Kind.choices)
    file = serializers.FileField(
        help_text="CSV (header row) or JSON lines (one API object per line), UTF-8."
    )
    format = serializers.ChoiceField(
        choices=ImportJob.Format.choices,
        required=False,
        help_text="Default: from the file name (.csv, .jsonl/.ndjson).",
    )

    def validate(self, attrs):
        try:
            attrs["format"] = import_format_for(
                filename=attrs["file"].name, format=attrs.get("format")
            )
        except ImportFormatError as exc:
            raise serializers.ValidationError({"format": [str(exc)]}) from exc
        return attrs


class ImportProgressSerializer(serializers.Serializer):
    bytes_done = serializers.IntegerField()
    bytes_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    rows_total = serializers.IntegerField(
        allow_null=True,
        help_text="Estimated from the line count until the import ends.",
    )
    percent = serializers.FloatField()


class ImportRejectionSerializer(serializers.Serializer):
    line = serializers.IntegerField(
        help_text="1-based line of the file (CSV header = 1)."
    )
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField())
    )


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _progress(job: ImportJob) -> dict:
    if job.status == ImportJob.Status.DONE:
        percent = 100.0
    elif job.bytes_total:
        percent = round(min(100.0 * job.bytes_done / job.bytes_total, 100.0), 1)
    else:
        percent = 0.0
    return {
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "percent": percent,
    }


class ImportJobSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    file_name = serializers.CharField(source="original_name", read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "kind",
            "format",
            "file_name",
            "status",
            "progress",
            "accepted",
            "duplicates",
            "rejected",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ImportProgressSerializer)
    def get_progress(self, job: ImportJob) -> dict:
        return _progress(job)


class ImportJobDetailSerializer(ImportJobSerializer):
    rejected_rows = ImportRejectionSerializer(
        source="errors",
        many=True,
        read_only=True,
        help_text="The first 100 rejected rows with their line and reasons.",
    )

    class Meta(ImportJobSerializer.Meta):
        fields = [*ImportJobSerializer.Meta.fields, "rejected_rows"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="List import jobs, newest first"),
    retrieve=extend_schema(
        summary="One import job: status, progress, first rejected rows"
    ),
)
class ImportJobViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Bulk imports of users, items or interactions from a file, run by a worker."""

    permission_classes = [WriteKeyOnly]
    parser_classes = [MultiPartParser, FormParser]
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if self.action == "list":
            return import_job_list()
        return import_job_detail()

    def get_serializer_class(self):
        if self.action == "create":
            return ImportJobCreateSerializer
        if self.action == "retrieve":
            return ImportJobDetailSerializer
        return ImportJobSerializer

    @extend_schema(
        summary="Upload a file to import in the background",
        request={"multipart/form-data": ImportJobCreateSerializer},
        responses={202: ImportJobDetailSerializer},
    )
    def create(self, request, *args, **kwargs):
        limit = int(settings.RECSITE.get("IMPORT_MAX_UPLOAD_BYTES", 1 << 30))
        # Checked before the body is read, so an oversized upload is not stored first.
        if _content_length(request) > limit:
            raise PayloadTooLarge(FILE_TOO_LARGE.format(limit=limit))
        serializer = ImportJobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if (data["file"].size or 0) > limit:  # sent without a Content-Length
            raise PayloadTooLarge(FILE_TOO_LARGE.format(limit=limit))
        job = import_job_create(
            kind=data["kind"], file=data["file"], format=data["format"]
        )
        return Response(
            ImportJobDetailSerializer(job).data, status=status.HTTP_202_ACCEPTED
        )
