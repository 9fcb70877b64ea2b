"""Background upkeep of the model registry.

Single-flight training requests, reaping of runs whose worker died, pruning of old
versions, and the default periodic schedules (django-celery-beat).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from items.models import Item
from recommendations.models import Interaction, InteractionType, ModelVersion
from users.models import EndUser

logger = logging.getLogger(__name__)

STALE_RUN_ERROR = "worker lost: heartbeat stale since {since} (threshold {seconds}s)"
STALE_QUEUED_ERROR = (
    "never started: no training worker picked it up within {seconds}s "
    "(queued at {since})"
)

Status = ModelVersion.Status
# Versions that went through training successfully (they have a data snapshot).
TRAINED = (Status.ACTIVE, Status.READY, Status.REJECTED)


def _recsite(key: str, default):
    return settings.RECSITE.get(key, default)


# --------------------------------------------------------------------------- requests


def model_version_in_flight() -> ModelVersion | None:
    """The version queued or training right now (the DB allows at most one)."""
    return ModelVersion.objects.filter(status__in=ModelVersion.IN_FLIGHT).first()


def training_data_changed() -> bool:
    """True when data changed since the newest trained version's snapshot.

    Compares the highest interaction id with the version's `data_watermark`, and
    items, end-users and interaction types edited after its training started.
    """
    latest = ModelVersion.objects.filter(status__in=TRAINED).order_by("-id").first()
    if latest is None or latest.data_watermark is None:
        return True
    max_interaction = Interaction.objects.aggregate(m=Max("id"))["m"]
    if max_interaction is not None and max_interaction > latest.data_watermark:
        return True
    snapshot_at = latest.started_at or latest.created_at
    return any(
        model.objects.filter(updated_at__gt=snapshot_at).exists()
        for model in (Item, EndUser, InteractionType)
    )


def model_version_request(
    *, trigger: str, force: bool = False, params: dict | None = None
) -> tuple[ModelVersion | None, bool]:
    """Queue a training run unless one is in flight; returns (version, created).

    Reaps runs whose worker died first, so a dead run never blocks a new one. Two
    simultaneous requests produce one run: the loser of the race on the
    `one_model_version_in_flight` index gets the winner's version with
    `created=False`. A `schedule` trigger (without `force`) is skipped when no data
    changed since the last trained version and `RECSITE["SKIP_RETRAIN_IF_UNCHANGED"]`
    is on: then `(None, False)`. API, command and admin triggers always run.
    """
    from recommendations.services.registry import model_version_request_training

    model_versions_reap_stale()
    existing = model_version_in_flight()
    if existing is not None:
        return existing, False
    if (
        trigger == ModelVersion.Trigger.SCHEDULE
        and not force
        and _recsite("SKIP_RETRAIN_IF_UNCHANGED", True)
        and not training_data_changed()
    ):
        logger.info("scheduled retrain skipped: no data changed since the last version")
        return None, False
    # Creates the row (the partial unique index settles races) and enqueues
    # train_model_task on commit.
    return model_version_request_training(trigger=trigger, params=params)


# ---------------------------------------------------------------------------- reaping


def model_versions_reap_stale(*, now: datetime | None = None) -> list[int]:
    """Mark failed the versions whose worker is gone; returns their ids.

    `training` with a heartbeat older than `RECSITE["STALE_RUN_AFTER_S"]` (the worker
    was killed), or `queued` for longer than `RECSITE["STALE_QUEUED_AFTER_S"]` (the
    message was lost). The active version is never touched.
    """
    now = now or timezone.now()
    run_after = int(_recsite("STALE_RUN_AFTER_S", 900))
    queued_after = int(_recsite("STALE_QUEUED_AFTER_S", 6 * 3600))
    run_cutoff = now - timedelta(seconds=run_after)
    queued_cutoff = now - timedelta(seconds=queued_after)
    reaped: list[int] = []
    candidates = ModelVersion.objects.filter(
        Q(status=Status.TRAINING)
        & (
            Q(heartbeat_at__lt=run_cutoff)
            | Q(heartbeat_at__isnull=True, started_at__lt=run_cutoff)
            | Q(
                heartbeat_at__isnull=True,
                started_at__isnull=True,
                updated_at__lt=run_cutoff,
            )
        )
        | Q(status=Status.QUEUED, created_at__lt=queued_cutoff)
    ).values_list(
        "id", "status", "heartbeat_at", "started_at", "updated_at", "created_at"
    )
    for pk, status, heartbeat_at, started_at, updated_at, created_at in candidates:
        if status == Status.TRAINING:
            since = heartbeat_at or started_at or updated_at
            error = STALE_RUN_ERROR.format(since=since.isoformat(), seconds=run_after)
            # Only if nothing moved since we looked: a late heartbeat keeps it alive.
            match = {"heartbeat_at": heartbeat_at, "updated_at": updated_at}
        else:
            error = STALE_QUEUED_ERROR.format(
                since=created_at.isoformat(), seconds=queued_after
            )
            match = {"updated_at": updated_at}
        updated = ModelVersion.objects.filter(pk=pk, status=status, **match).update(
            status=Status.FAILED, error=error, finished_at=now, updated_at=now
        )
        if updated:
            logger.warning("model version %s reaped: %s", pk, error)
            reaped.append(pk)
    return reaped


def model_versions_resend_stranded(*, now: datetime | None = None) -> list[int]:
    """Send again the versions still queued, unstarted, after RESEND_QUEUED_AFTER_S.

    Their message was lost (the broker was down when training was requested): the
    request is kept rather than failed, and runs once the broker is back. The
    training claim (`queued` → `training`) makes a duplicate message harmless.
    """
    from recommendations.services.registry import _enqueue

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=int(_recsite("RESEND_QUEUED_AFTER_S", 120)))
    stranded = ModelVersion.objects.filter(
        status=Status.QUEUED, started_at__isnull=True, updated_at__lt=cutoff
    ).values_list("id", flat=True)
    resent = []
    for pk in stranded:
        if _enqueue(pk):
            ModelVersion.objects.filter(pk=pk, status=Status.QUEUED).update(
                updated_at=now
            )
            resent.append(pk)
    return resent


# ---------------------------------------------------------------------------- pruning


def _artifact_remover(version: ModelVersion):
    """A function deleting the version's artifacts, or None when there is nothing safe.

    `artifact_path` is an artifact name of `recommendations.artifact_store` (local
    or remote storage, plus this machine's cache), or, for older rows, an absolute
    directory, which is only deleted inside ARTIFACTS_DIR whatever the row says.
    """
    from recommendations.services.registry import artifact_store

    path = version.artifact_path
    if not path:
        return None
    store = artifact_store()
    if not Path(path).is_absolute():
        if store is not None:
            return partial(_quietly, store.artifact_delete, name=path)
        path = str(Path(settings.RECSITE["ARTIFACTS_DIR"]) / path)
    root = Path(settings.RECSITE["ARTIFACTS_DIR"]).resolve()
    directory = Path(path).resolve()
    if directory == root or not directory.is_relative_to(root):
        logger.warning("not deleting %s: outside ARTIFACTS_DIR", directory)
        return None
    return partial(shutil.rmtree, directory, ignore_errors=True)


def _quietly(function, **kwargs) -> None:
    # Runs after commit: a storage error must not fail the rest of the prune.
    try:
        function(**kwargs)
    except Exception:  # noqa: BLE001
        logger.exception("could not delete artifacts %s", kwargs)


def model_versions_prune(
    *, keep: int | None = None, failed_after_days: int | None = None, now=None
) -> list[int]:
    """Delete old versions (rows and artifact directories); returns the deleted ids.

    Keeps the active version, anything queued or training, the newest `keep`
    (`RECSITE["KEEP_MODEL_VERSIONS"]`) other trained versions, and failed versions
    younger than `failed_after_days` (`RECSITE["PRUNE_FAILED_AFTER_DAYS"]`).
    """
    now = now or timezone.now()
    keep = _recsite("KEEP_MODEL_VERSIONS", 5) if keep is None else keep
    if failed_after_days is None:
        failed_after_days = _recsite("PRUNE_FAILED_AFTER_DAYS", 14)
    kept_trained = list(
        ModelVersion.objects.filter(status__in=[Status.READY, Status.REJECTED])
        .order_by("-id")
        .values_list("id", flat=True)[: max(keep, 0)]
    )
    doomed = ModelVersion.objects.filter(
        Q(status__in=[Status.READY, Status.REJECTED]) & ~Q(id__in=kept_trained)
        | Q(
            status=Status.FAILED, created_at__lt=now - timedelta(days=failed_after_days)
        )
    )
    deleted: list[int] = []
    for version in doomed.only("id", "status", "artifact_path"):
        remove_artifacts = _artifact_remover(version)
        with transaction.atomic():
            # Re-check under a lock: activation may have picked it meanwhile.
            row = (
                ModelVersion.objects.select_for_update()
                .filter(pk=version.pk, status=version.status)
                .first()
            )
            if row is None:
                continue
            row.delete()
            if remove_artifacts is not None:
                # The row goes first: a version never points to missing files.
                transaction.on_commit(remove_artifacts)
        deleted.append(version.pk)
    if deleted:
        logger.info("pruned model versions %s", deleted)
    return deleted


# -------------------------------------------------------------------------- schedules

# The default periodic tasks; staff edit or disable them in the admin
# ("Periodic tasks"). `expire_seconds` drops runs that waited longer than one
# period (workers down), so they never pile up.
DEFAULT_PERIODIC_TASKS: tuple[dict, ...] = (
    {
        "name": "Nightly model retrain",
        "task": "recommendations.tasks.scheduled_retrain_task",
        "crontab": {"minute": "0", "hour": "3"},
        "expire_seconds": 6 * 3600,
        "description": (
            "Train a new model version at 03:00 (TIME_ZONE) unless nothing changed "
            "since the last one (RECSITE SKIP_RETRAIN_IF_UNCHANGED)."
        ),
    },
    {
        "name": "Refresh popularity",
        "task": "recommendations.tasks.refresh_popularity_task",
        "interval": {"every": 15, "period": "minutes"},
        "expire_seconds": 15 * 60,
        "description": "Recompute popular and trending (time-decayed) items.",
    },
    {
        "name": "Fold in recent interactions",
        "task": "recommendations.tasks.fold_in_recent_task",
        "interval": {"every": 10, "period": "minutes"},
        "expire_seconds": 10 * 60,
        "description": (
            "Measure the data newer than the active model (interactions, users, "
            "items) for the admin and monitoring; serving folds it in per request."
        ),
    },
    {
        "name": "Reap stale training runs",
        "task": "recommendations.tasks.reap_stale_runs_task",
        "interval": {"every": 5, "period": "minutes"},
        "expire_seconds": 5 * 60,
        "description": (
            "Mark failed the versions whose worker died (stale heartbeat), and "
            "imports whose worker died, so the next run is not blocked."
        ),
    },
    {
        "name": "Prune old model versions",
        "task": "recommendations.tasks.prune_model_versions_task",
        "crontab": {"minute": "30", "hour": "4"},
        "expire_seconds": 6 * 3600,
        "description": (
            "Keep the active version and the last KEEP_MODEL_VERSIONS; delete older "
            "artifacts, and failed versions older than PRUNE_FAILED_AFTER_DAYS."
        ),
    },
)


def periodic_tasks_setup(*, reset: bool = False, apps=None) -> dict[str, str]:
    """Create the missing default periodic tasks; returns {name: what happened}.

    Idempotent. Existing tasks keep staff edits (schedule, enabled) unless `reset`,
    which restores the defaults. `apps` is a migration's app registry (a data
    migration calls this with historical models).
    """
    if apps is None:
        from django_celery_beat.models import (
            CrontabSchedule,
            IntervalSchedule,
            PeriodicTask,
            PeriodicTasks,
        )
    else:
        CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    outcome: dict[str, str] = {}
    with transaction.atomic():
        for spec in DEFAULT_PERIODIC_TASKS:
            schedule: dict = {"interval": None, "crontab": None}
            if "crontab" in spec:
                schedule["crontab"], _ = CrontabSchedule.objects.get_or_create(
                    **spec["crontab"],
                    day_of_week="*",
                    day_of_month="*",
                    month_of_year="*",
                    timezone=settings.TIME_ZONE,
                )
            else:
                schedule["interval"], _ = IntervalSchedule.objects.get_or_create(
                    **spec["interval"]
                )
            defaults = {
                "task": spec["task"],
                "description": spec["description"],
                "expire_seconds": spec["expire_seconds"],
                "enabled": True,
                "args": "[]",
                "kwargs": "{}",
                **schedule,
            }
            task = PeriodicTask.objects.filter(name=spec["name"]).first()
            if task is None:
                PeriodicTask.objects.create(name=spec["name"], **defaults)
                outcome[spec["name"]] = "created"
            elif reset:
                for field, value in defaults.items():
                    setattr(task, field, value)
                task.save()
                outcome[spec["name"]] = "reset"
            else:
                outcome[spec["name"]] = "kept"
        if apps is not None:
            # Historical models skip PeriodicTask.save()'s change signal: tell a
            # running beat to reload its schedule.
            PeriodicTasks.objects.update_or_create(
                ident=1, defaults={"last_update": timezone.now()}
            )
    return outcome


# ------------------------------------------------------------------------- popularity

# Serving's popular lists, precomputed: the all-time ranking and the time-decayed
# trending one (the same `popular_item_scores` query serving runs, over all items).
POPULARITY_CACHE_TIMEOUT_S = 2 * 24 * 3600
POPULARITY_LIMIT = 4096
TRENDING_WINDOW = timedelta(days=7)


def _popularity_cache_key() -> str:
    from django.db import connection

    # Per database, like serving's keys: a test run and a dev server may share Redis.
    return f"popularity:{connection.settings_dict.get('NAME') or 'default'}:v1"


def popularity_refresh(
    *, now: datetime | None = None, limit: int | None = None
) -> dict:
    """Recompute the popular and trending (time-decayed) item lists into the cache.

    Runs serving's own query (`selectors.serving.popular_item_scores`), so the lists
    are exactly what a request would compute: popular = positive interactions of
    all time; trending = each positive interaction of the last 7 days weighted
    2^(-age / 1 day). Read them with `popularity_cached()`.
    """
    from django.core.cache import cache

    from recommendations.selectors.serving import popular_item_scores

    now = now or timezone.now()
    limit = limit or POPULARITY_LIMIT
    lists = {}
    for name, options in (
        ("popular", {}),
        ("trending", {"trending": True, "window": TRENDING_WINDOW}),
    ):
        pks, scores = popular_item_scores(limit=limit, now=now, **options)
        lists[name] = [
            [int(pk), float(score)] for pk, score in zip(pks, scores, strict=True)
        ]
    snapshot = {"computed_at": now.isoformat(), "trending_window_s": 7 * 86400, **lists}
    cache.set(_popularity_cache_key(), snapshot, timeout=POPULARITY_CACHE_TIMEOUT_S)
    return {
        "computed_at": snapshot["computed_at"],
        **{k: len(v) for k, v in lists.items()},
    }


def popularity_cached() -> dict | None:
    """The last `popularity_refresh()` result, or None (Redis down or never computed).

    `{"computed_at": iso, "popular": [[item_pk, score], ...], "trending": [...]}`,
    best first (hidden or unavailable items included: serving filters them).
    """
    from django.core.cache import cache

    try:
        return cache.get(_popularity_cache_key())
    except Exception:  # noqa: BLE001 - serving must survive a Redis outage
        logger.warning("popularity cache unavailable", exc_info=True)
        return None


# ---------------------------------------------------------------------------- fold-in

FRESHNESS_CACHE_TIMEOUT_S = 24 * 3600


def _freshness_cache_key() -> str:
    from django.db import connection

    return f"model-freshness:{connection.settings_dict.get('NAME') or 'default'}:v1"


def model_freshness_refresh(*, now: datetime | None = None) -> dict:
    """Measure the data the active model has not been trained on; cache and return it.

    Serving folds recent data in at request time, per web process: it reads each
    user's history for every request (new interactions count at once), and it embeds
    items created after training from their metadata (the new-item overlay, which
    must live in the process that scores, so a worker cannot build it for them).
    What a worker can do cheaply is to measure that gap: interactions, end-users
    and items newer than the active version's snapshot. Read with
    `model_freshness_cached()` (admin dashboard, monitoring).
    """
    from django.core.cache import cache

    now = now or timezone.now()
    active = ModelVersion.objects.filter(status=Status.ACTIVE).first()
    figures: dict = {"computed_at": now.isoformat(), "active_version": None}
    if active is not None:
        snapshot_at = active.started_at or active.created_at
        newer = Interaction.objects.filter(id__gt=active.data_watermark or 0)
        figures.update(
            active_version=active.pk,
            trained_on_data_until=snapshot_at.isoformat(),
            new_interactions=newer.count(),
            users_with_new_interactions=newer.values("user_id").distinct().count(),
            new_users=EndUser.objects.filter(created_at__gt=snapshot_at).count(),
            # Embedded from metadata by serving's new-item overlay until a retrain.
            new_items=Item.objects.filter(created_at__gt=snapshot_at).count(),
            model_age_s=round((now - snapshot_at).total_seconds()),
        )
    cache.set(_freshness_cache_key(), figures, timeout=FRESHNESS_CACHE_TIMEOUT_S)
    return figures


def model_freshness_cached() -> dict | None:
    """The last `model_freshness_refresh()` figures, or None (Redis down / not yet)."""
    from django.core.cache import cache

    try:
        return cache.get(_freshness_cache_key())
    except Exception:  # noqa: BLE001 - readers must survive a Redis outage
        logger.warning("model freshness cache unavailable", exc_info=True)
        return None
