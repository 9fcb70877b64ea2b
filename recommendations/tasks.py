"""Celery tasks: thin entry points that call one service and own retries.

Every task is safe to run twice (acks_late redelivers a message whose worker died):
training claims a version only while it is queued, imports resume from their last
committed chunk, and the periodic tasks are idempotent recomputations.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recommendations.models import ModelVersion
from recommendations.services.imports import (
    import_files_prune,
    import_job_fail,
    import_job_run,
    import_jobs_reap_stale,
    import_jobs_resend_stranded,
)
from recommendations.services.maintenance import (
    model_freshness_refresh,
    model_version_request,
    model_versions_prune,
    model_versions_reap_stale,
    model_versions_resend_stranded,
    popularity_refresh,
)
from recommendations.services.registry import model_version_fail
from recommendations.services.training import model_version_train

logger = logging.getLogger(__name__)

# Errors worth another attempt: the database or Redis was briefly unreachable.
TRANSIENT_ERRORS = (
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    BrokerOperationalError,
)
MAX_RETRIES = 5
GAVE_UP = "gave up after {retries} retries: {error}"


def _backoff(retries: int) -> int:
    """Seconds before retry `retries + 1`: 10, 20, 40, 80, 160 (at most 300)."""
    return min(10 * 2**retries, 300)


def _give_up(fail, *, exc: BaseException, **ids) -> None:
    """Record the last transient error once retries are exhausted (best effort)."""
    error = GAVE_UP.format(retries=MAX_RETRIES, error=f"{type(exc).__name__}: {exc}")
    try:
        fail(error=error, **ids)
    except Exception:  # noqa: BLE001 - still down: the reaper records it later
        logger.warning("could not record %s for %s", error, ids)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def train_model_task(self, version_id: int) -> str:
    """Train one queued model version; returns the status it ended in.

    Runs on queue `training` with the time limits of CELERY_TASK_ANNOTATIONS. The
    training service claims the version only while it is `queued` (one conditional
    UPDATE), so a redelivered or duplicated message never starts a second run, and
    a finished or failed version is left alone. It records any exception (soft time
    limit included) as `failed`; a transient error before the claim, or while
    recording, is retried with backoff (the version is then still queued, or the
    reaper fails it once its heartbeat is stale).
    """
    try:
        version = model_version_train(version_id=version_id)
    except ModelVersion.DoesNotExist:
        logger.info("model version %s no longer exists: nothing to train", version_id)
        return "missing"
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            _give_up(model_version_fail, version_id=version_id, exc=exc)
            raise
        logger.warning("training of version %s hit %r; retrying", version_id, exc)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    return version.status


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def scheduled_retrain_task(self) -> int | None:
    """Beat: request a retrain (skipped if nothing changed); returns the version id."""
    try:
        version, _created = model_version_request(trigger=ModelVersion.Trigger.SCHEDULE)
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    return version.pk if version is not None else None


@shared_task(acks_late=True)
def reap_stale_runs_task() -> dict[str, list[int]]:
    """Beat: fail runs whose worker is gone; re-send work whose message was lost."""
    return {
        "versions": model_versions_reap_stale(),
        "imports": import_jobs_reap_stale(),
        "resent_versions": model_versions_resend_stranded(),
        "resent_imports": import_jobs_resend_stranded(),
    }


@shared_task(acks_late=True)
def prune_model_versions_task() -> dict[str, object]:
    """Beat (daily): delete old versions and their artifacts, and old import uploads."""
    return {"versions": model_versions_prune(), "import_files": import_files_prune()}


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def refresh_popularity_task(self) -> dict:
    """Beat (every 15 min): recompute popular and trending items for serving."""
    try:
        return popularity_refresh()
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def fold_in_recent_task(self) -> dict:
    """Beat: measure the data newer than the active model (serving folds it in live)."""
    try:
        return model_freshness_refresh()
    except TRANSIENT_ERRORS as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def import_file_task(self, job_id: int) -> str:
    """Run one bulk import job; a retry or redelivery resumes after its last chunk."""
    try:
        job = import_job_run(job_id=job_id, resumed=self.request.retries > 0)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            _give_up(import_job_fail, job_id=job_id, exc=exc)
            raise
        logger.warning("import %s hit %r; retrying", job_id, exc)
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    return job.status if job is not None else "skipped"
