"""`GET /api/v1/health/`: is the service able to work? (public)"""

import time

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return {"status": "down", "error": exc.__class__.__name__}
    return {
        "status": "up",
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _check_redis() -> dict:
    from django.core.cache import cache

    started = time.perf_counter()
    try:
        cache.set("health:ping", "1", timeout=5)
        if cache.get("health:ping") != "1":
            raise RuntimeError("readback failed")
    except Exception as exc:  # noqa: BLE001
        return {"status": "down", "error": exc.__class__.__name__}
    return {
        "status": "up",
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _check_model() -> dict:
    try:
        from recommendations.serving import model_health
    except ImportError:
        return {"status": "unknown"}
    try:
        return model_health()
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "error": exc.__class__.__name__}


def _check_change_feed() -> dict:
    """This process's change feed and the in-memory catalog it keeps current."""
    from recsite.changes import feed

    if not feed.enabled():
        return {"status": "off"}
    if feed.live():
        from recommendations.catalog import catalog

        return {"status": "live", "catalog": catalog.stats()}
    if feed.last_error:
        return {"status": "down", "error": feed.last_error}
    return {"status": "starting"}


_component = inline_serializer(
    "HealthComponent",
    fields={
        "status": serializers.CharField(),
        "latency_ms": serializers.FloatField(required=False),
        "error": serializers.CharField(required=False),
    },
)


class HealthView(APIView):
    """200 when the database is up ("ok", or "degraded" without Redis); else 503."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="health",
        responses={
            (200, "application/json"): inline_serializer(
                "Health",
                fields={
                    "status": serializers.ChoiceField(
                        choices=["ok", "degraded", "down"]
                    ),
                    "database": _component,
                    "redis": _component,
                    "model": serializers.DictField(),
                    "change_feed": serializers.DictField(
                        help_text="This web process's PostgreSQL change feed: "
                        "live (API keys, rules and the item catalog served from "
                        "memory), starting, down (read from the database; the "
                        "service is degraded) or off."
                    ),
                },
            )
        },
        tags=["health"],
    )
    def get(self, request):
        database = _check_database()
        redis = _check_redis()
        model = _check_model() if database["status"] == "up" else {"status": "unknown"}
        feed = _check_change_feed()
        if database["status"] != "up":
            overall = "down"
        elif (
            redis["status"] != "up"
            or model.get("status") in {"error", "fallback"}
            or feed["status"] == "down"
        ):
            overall = "degraded"
        else:
            overall = "ok"
        body = {
            "status": overall,
            "database": database,
            "redis": redis,
            "model": model,
            "change_feed": feed,
        }
        return Response(body, status=503 if overall == "down" else 200)
