"""Training: snapshot -> engine fit/evaluate -> artifacts -> registry -> gate."""

from __future__ import annotations

import logging
import secrets
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from recommendations.models import ModelVersion
from recommendations.selectors.training import training_snapshot
from recommendations.services.registry import (
    artifact_store,
    model_version_apply_quality_gate,
    model_version_create,
)

logger = logging.getLogger(__name__)

# The row's progress/heartbeat is written at most this often (seconds).
PROGRESS_WRITE_INTERVAL_S = 2.0
MAX_ERROR_CHARS = 20_000
# Share of the progress bar per phase (extraction, engine, save).
_EXTRACT_SHARE, _ENGINE_SHARE = 0.05, 0.90

ProgressCallback = Callable[[str, float], None]


class _ProgressReporter:
    """Forwards every progress call; writes the row at most every few seconds."""

    def __init__(self, version_id: int, callback: ProgressCallback | None) -> None:
        self.version_id = version_id
        self.callback = callback
        self.last_write = 0.0

    def __call__(self, stage: str, percent: float, *, force: bool = False) -> None:
        percent = float(min(max(percent, 0.0), 100.0))
        if self.callback is not None:
            self.callback(stage, percent)
        now = time.monotonic()
        if force or now - self.last_write >= PROGRESS_WRITE_INTERVAL_S:
            self.last_write = now
            ModelVersion.objects.filter(pk=self.version_id).update(
                progress_stage=stage[:64],
                progress_percent=percent,
                heartbeat_at=timezone.now(),
            )

    def engine(self, stage: str, fraction: float) -> None:
        """The engine's callback: its fraction maps onto the middle of the bar."""
        fraction = float(min(max(fraction, 0.0), 1.0))
        self(stage, 100.0 * (_EXTRACT_SHARE + _ENGINE_SHARE * fraction))


def train_config_for(params: dict | None):
    """Engine configuration: product defaults, the settings budget, then overrides."""
    from recommendations.engine.types import TrainConfig

    base = (
        TrainConfig()
        .replace(time_budget_s=float(settings.RECSITE["TRAIN_TIME_BUDGET_S"]))
        .as_dict()
    )
    base.update(params or {})
    return TrainConfig.from_dict(base)


def _save_and_publish(bundle, version_id: int) -> str:
    """Write the artifacts atomically and publish them; returns what to record."""
    from recommendations.engine.artifacts import save_artifacts

    # The random part keeps a re-run of the same version from colliding with the
    # leftovers of a crashed run.
    name = f"v{version_id}-{secrets.token_hex(4)}"
    store = artifact_store()
    if store is None:
        root = Path(settings.RECSITE["ARTIFACTS_DIR"])
        root.mkdir(parents=True, exist_ok=True)
        save_artifacts(bundle, root / name)
        return str(root / name)
    directory = store.artifact_staging_dir(name=name)
    save_artifacts(bundle, directory)
    return store.artifact_publish(source_dir=directory, name=name)


def _discard_artifacts(path: str) -> None:
    store = artifact_store()
    if store is None:
        shutil.rmtree(path, ignore_errors=True)
    else:
        store.artifact_delete(name=path)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))
    return text[:MAX_ERROR_CHARS]


def _engine_timings(engine_timings: dict) -> tuple[float, float]:
    """(features+fit, evaluate) seconds from the engine's own breakdown.

    The engine evaluates inside its validation searches (`*_search_s`: fits on the
    training split scored on the holdout); everything else is features, the final
    refit and the serving structures.
    """
    evaluate = sum(
        float(v)
        for k, v in engine_timings.items()
        if _num(v) and ("search" in k or "eval" in k)
    )
    total = engine_timings.get("total_s", engine_timings.get("total"))
    if not _num(total):
        total = sum(float(v) for v in engine_timings.values() if _num(v))
    return max(float(total) - evaluate, 0.0), evaluate


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def model_version_train(
    *, version_id: int, progress: ProgressCallback | None = None
) -> ModelVersion:
    """Train a queued version; ends ready/active/rejected, or failed with the error.

    Idempotent: a version that is not queued (already picked up, or finished) is
    returned unchanged. Never touches the active version on failure.
    """
    from recommendations.engine.train import train_model

    started = timezone.now()
    claimed = ModelVersion.objects.filter(
        pk=version_id, status=ModelVersion.Status.QUEUED
    ).update(
        status=ModelVersion.Status.TRAINING,
        started_at=started,
        heartbeat_at=started,
        progress_stage="extract",
        progress_percent=0.0,
        updated_at=started,
    )
    version = ModelVersion.objects.get(pk=version_id)
    if not claimed:
        logger.info(
            "model version %s is %s, not queued: nothing to do",
            version_id,
            version.status,
        )
        return version

    reporter = _ProgressReporter(version_id, progress)
    timings: dict = {}
    t_total = time.perf_counter()
    try:
        reporter("extract", 0.0, force=True)
        t0 = time.perf_counter()
        snapshot = training_snapshot()
        timings["extract"] = round(time.perf_counter() - t0, 3)
        config = train_config_for(version.params)
        reporter("fit", 100.0 * _EXTRACT_SHARE, force=True)

        t0 = time.perf_counter()
        result = train_model(snapshot.data, config, progress=reporter.engine)
        engine_seconds = time.perf_counter() - t0
        fit, evaluate = _engine_timings(dict(result.timings or {}))
        if not fit and not evaluate:
            fit = engine_seconds
        timings["features+fit"] = round(fit, 3)
        timings["evaluate"] = round(evaluate, 3)
        timings["engine"] = {k: v for k, v in (result.timings or {}).items() if _num(v)}

        reporter("save", 100.0 * (_EXTRACT_SHARE + _ENGINE_SHARE), force=True)
        t0 = time.perf_counter()
        artifact_path = _save_and_publish(result.bundle, version_id)
        timings["save"] = round(time.perf_counter() - t0, 3)
        timings["total"] = round(time.perf_counter() - t_total, 3)

        finished = timezone.now()
        # Conditional: a run the reaper already failed (stale heartbeat) must not
        # come back as ready behind a newer run.
        published = ModelVersion.objects.filter(
            pk=version_id, status=ModelVersion.Status.TRAINING
        ).update(
            status=ModelVersion.Status.READY,
            params=_jsonable(result.params),
            metrics=_jsonable(result.metrics),
            data_stats=_jsonable({**snapshot.stats, **(result.data_stats or {})}),
            timings=timings,
            artifact_path=artifact_path,
            data_watermark=snapshot.watermark,
            # until the gate below has activated or rejected it
            progress_stage=ModelVersion.STAGE_GATE,
            progress_percent=100.0,
            heartbeat_at=finished,
            finished_at=finished,
            error="",
            updated_at=finished,
        )
        if not published:
            logger.warning(
                "model version %s was failed meanwhile; discarding", version_id
            )
            _discard_artifacts(artifact_path)
            return ModelVersion.objects.get(pk=version_id)
    except BaseException as exc:
        logger.exception("training model version %s failed", version_id)
        now = timezone.now()
        ModelVersion.objects.filter(
            pk=version_id, status=ModelVersion.Status.TRAINING
        ).update(
            status=ModelVersion.Status.FAILED,
            error=_error_text(exc),
            timings=timings,
            finished_at=now,
            heartbeat_at=now,
            updated_at=now,
        )
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt / SystemExit: recorded, then let it through
        return ModelVersion.objects.get(pk=version_id)

    version = ModelVersion.objects.get(pk=version_id)
    try:
        version = model_version_apply_quality_gate(version=version)
    except Exception:  # noqa: BLE001 - the trained version stays ready for staff
        logger.exception("quality gate for model version %s failed", version_id)
    finally:
        ModelVersion.objects.filter(
            pk=version_id, progress_stage=ModelVersion.STAGE_GATE
        ).update(progress_stage="done")
    version.refresh_from_db()
    return version


def model_version_train_now(
    *,
    trigger: str = ModelVersion.Trigger.COMMAND,
    params: dict | None = None,
    progress: ProgressCallback | None = None,
) -> ModelVersion:
    """Create (single flight) and train in this process (commands, tests)."""
    version = model_version_create(trigger=trigger, params=params)
    return model_version_train(version_id=version.pk, progress=progress)


def _jsonable(value):
    """Plain JSON types (numpy scalars/arrays and tuples become floats/lists)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
