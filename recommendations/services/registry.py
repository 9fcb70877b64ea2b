"""The model registry: create (single flight), activate (atomic; rollback), fail."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from recommendations.models import ModelVersion
from recommendations.selectors.training import (
    model_version_active,
    model_version_in_flight,
)

logger = logging.getLogger(__name__)

NOT_ACTIVATABLE = (
    "Version {id} is {status}: only a ready, rejected or previously active version "
    "can be activated."
)
ARTIFACTS_MISSING = "Version {id} has no artifacts on disk; it cannot be activated."
# Serialises activations so two of them never race on the one-active constraint.
_ACTIVATION_LOCK_KEY = 0x7265_6373_6974_6501


class ModelVersionError(Exception):
    """A registry operation that the version's state does not allow."""


def training_task():
    """The Celery task that trains a version (imported lazily: Celery is heavy)."""
    from recommendations.tasks import train_model_task

    return train_model_task


def _enqueue(version_id: int) -> bool:
    """Send the training task; if the broker is down, leave the version queued.

    The request is not lost: the periodic reaper re-sends versions queued without a
    worker (the training claim makes a duplicate message harmless), and fails them
    only after STALE_QUEUED_AFTER_S.
    """
    try:
        training_task().delay(version_id)
    except Exception:  # noqa: BLE001 - any broker failure: keep it queued, never raise
        logger.warning(
            "could not enqueue training of model version %s; it stays queued and "
            "the reaper sends it again",
            version_id,
            exc_info=True,
        )
        return False
    return True


def artifact_published(path: str) -> bool:
    """Whether a version's artifacts exist (through the artifact store when present)."""
    if not path:
        return False
    store = artifact_store()
    if store is None:
        return Path(path).is_dir()
    return store.artifact_exists(name=path)


def artifact_store():
    """`recommendations.artifact_store` (storage API), or None before it exists."""
    try:
        from recommendations import artifact_store as store
    except ModuleNotFoundError as exc:
        if exc.name != "recommendations.artifact_store":
            raise
        return None
    return store


def _model_version_create(
    *, trigger: str, params: dict | None
) -> tuple[ModelVersion, bool]:
    existing = model_version_in_flight()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            # `params` holds the requested overrides until training replaces them
            # with the full configuration it used.
            version = ModelVersion.objects.create(
                status=ModelVersion.Status.QUEUED, trigger=trigger, params=params or {}
            )
        return version, True
    except IntegrityError:
        # Lost the race against a concurrent request: the partial unique index
        # one_model_version_in_flight let the other one in.
        existing = model_version_in_flight()
        if existing is None:
            raise
        return existing, False


def model_version_create(
    *, trigger: str = ModelVersion.Trigger.API, params: dict | None = None
) -> ModelVersion:
    """A queued version; single flight: returns the one already queued/training."""
    return _model_version_create(trigger=trigger, params=params)[0]


def model_version_request_training(
    *, trigger: str = ModelVersion.Trigger.API, params: dict | None = None
) -> tuple[ModelVersion, bool]:
    """Create (single flight), enqueue the Celery task on commit; (version, created)."""
    with transaction.atomic():
        version, created = _model_version_create(trigger=trigger, params=params)
        if created:
            version_id = version.pk
            transaction.on_commit(lambda: _enqueue(version_id))
    return version, created


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the active one (old active -> ready) in one transaction."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ACTIVATION_LOCK_KEY])
        target = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if target.status == ModelVersion.Status.ACTIVE:
            return target
        if target.status not in (
            ModelVersion.Status.READY,
            ModelVersion.Status.REJECTED,
        ):
            raise ModelVersionError(
                NOT_ACTIVATABLE.format(id=target.pk, status=target.status)
            )
        if not artifact_published(target.artifact_path):
            raise ModelVersionError(ARTIFACTS_MISSING.format(id=target.pk))
        now = timezone.now()
        # Old active first: the one-active unique index is checked per statement.
        list(
            ModelVersion.objects.select_for_update().filter(
                status=ModelVersion.Status.ACTIVE
            )
        )
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).update(
            status=ModelVersion.Status.READY, updated_at=now
        )
        target.status = ModelVersion.Status.ACTIVE
        target.activated_at = now
        target.save(update_fields=["status", "activated_at", "updated_at"])
        target_id = target.pk
        # Forget now (readers fall back to the database) and publish after commit.
        _forget_active()
        transaction.on_commit(lambda: _publish_active(target_id))
    logger.info("model version %s activated", target.pk)
    return target


def _forget_active() -> None:
    from recommendations.serving import active_version_forget

    active_version_forget()


def _publish_active(version_id: int) -> None:
    from recommendations.serving import active_version_publish

    active_version_publish(version_id)


def model_version_fail(*, version_id: int, error: str) -> ModelVersion | None:
    """Mark a queued/training version failed (worker lost); frees the slot."""
    now = timezone.now()
    ModelVersion.objects.filter(
        pk=version_id, status__in=ModelVersion.IN_FLIGHT
    ).update(
        status=ModelVersion.Status.FAILED, error=error, finished_at=now, updated_at=now
    )
    return ModelVersion.objects.filter(pk=version_id).first()


def quality_gate_passes(
    *, candidate_metrics: dict, active_metrics: dict | None, tolerance: float
) -> bool:
    """True when the candidate's NDCG@10 is within `tolerance` of the active one's."""
    if not active_metrics:
        return True
    active = active_metrics.get("ndcg_at_10")
    if active is None:
        return True
    candidate = candidate_metrics.get("ndcg_at_10")
    if candidate is None:
        return False
    return float(candidate) >= (1.0 - tolerance) * float(active)


def model_version_apply_quality_gate(*, version: ModelVersion) -> ModelVersion:
    """Activate a freshly trained version if good enough, else mark it rejected."""
    active = model_version_active()
    tolerance = float(settings.RECSITE["ACTIVATION_TOLERANCE"])
    if quality_gate_passes(
        candidate_metrics=version.metrics,
        active_metrics=active.metrics if active is not None else None,
        tolerance=tolerance,
    ):
        return model_version_activate(version=version)
    ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.READY).update(
        status=ModelVersion.Status.REJECTED, updated_at=timezone.now()
    )
    version.refresh_from_db()
    logger.info(
        "model version %s rejected: ndcg@10 %.4f < (1 - %.2f) x active v%s's %.4f",
        version.pk,
        float(version.metrics.get("ndcg_at_10") or 0.0),
        tolerance,
        active.pk,
        float(active.metrics.get("ndcg_at_10") or 0.0),
    )
    return version
