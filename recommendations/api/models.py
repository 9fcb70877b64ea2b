"""The model registry over HTTP: train (single flight), list, inspect, activate."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from recommendations.models import ModelVersion
from recommendations.services.maintenance import model_version_request
from recommendations.services.registry import ModelVersionError, model_version_activate

MIN_BUDGET_S = 1
MAX_BUDGET_S = 24 * 3600


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "status",
            "trigger",
            "params",
            "data_stats",
            "metrics",
            "timings",
            "error",
            "progress_stage",
            "progress_percent",
            "heartbeat_at",
            "data_watermark",
            "created_at",
            "started_at",
            "finished_at",
            "activated_at",
        ]
        read_only_fields = fields


class ModelVersionSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "status",
            "trigger",
            "metrics",
            "error",
            "progress_stage",
            "progress_percent",
            "created_at",
            "finished_at",
            "activated_at",
        ]
        read_only_fields = fields


class TrainBodySerializer(serializers.Serializer):
    time_budget_s = serializers.IntegerField(
        required=False,
        min_value=MIN_BUDGET_S,
        max_value=MAX_BUDGET_S,
        help_text="Search budget in seconds (default: TRAIN_TIME_BUDGET_S).",
    )


class TrainResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The version that is (or was already) in flight."
    )
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices)
    created = serializers.BooleanField(
        help_text="False when a training was already queued or running (single flight)."
    )


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()


@extend_schema_view(
    list=extend_schema(
        summary="Model versions, newest first",
        tags=["models"],
        responses=ModelVersionSummarySerializer(many=True),
    ),
    retrieve=extend_schema(summary="One model version", tags=["models"]),
)
class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Trained models: metrics, progress, and which one serves."""

    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        return ModelVersion.objects.order_by("-id")

    def get_serializer_class(self):
        if self.action == "list":
            return ModelVersionSummarySerializer
        return ModelVersionSerializer

    @extend_schema(
        summary="Train a new model version",
        description=(
            "Queues a training run and returns 202 with its version id. Single flight: "
            "if a version is already queued or training, returns that one "
            "(`created=false`). Follow progress with `GET /api/v1/models/{id}/`; a "
            "good-enough version is activated automatically (quality gate). If the "
            "task queue is unreachable the version stays queued and is sent again "
            "when it is back."
        ),
        request=TrainBodySerializer,
        responses={202: TrainResponseSerializer},
        tags=["models"],
    )
    @action(detail=False, methods=["post"])
    def train(self, request):
        body = TrainBodySerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        params = {}
        if "time_budget_s" in body.validated_data:
            params["time_budget_s"] = float(body.validated_data["time_budget_s"])
        # Reaps runs whose worker died first, so a dead run never blocks this one.
        version, created = model_version_request(
            trigger=ModelVersion.Trigger.API, params=params or None
        )
        return Response(
            {"id": version.pk, "status": version.status, "created": created},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        summary="Activate a model version (or roll back to an older one)",
        description=(
            "Makes this version the one that serves; the previously active one becomes "
            "`ready`. Allowed for ready, rejected and previously active versions; 409 "
            "for queued, training or failed ones."
        ),
        request=None,
        responses={
            200: ModelVersionSerializer,
            409: OpenApiResponse(ConflictSerializer, description="Not activatable."),
        },
        tags=["models"],
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        version = self.get_object()
        try:
            version = model_version_activate(version=version)
        except ModelVersionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)
