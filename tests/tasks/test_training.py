"""Training through a real Celery worker: single flight, failures, killed workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from recommendations.models import ModelVersion
from recommendations.services.maintenance import model_version_request
from recommendations.services.training import model_version_train_now
from recommendations.tasks import train_model_task
from tests.reliability.servers import database_url
from tests.tasks.conftest import (
    FAST_TRAINING,
    broker_url_for_tests,
    running_worker,
    wait_for,
)

Status = ModelVersion.Status
FINISHED = (Status.ACTIVE, Status.READY, Status.REJECTED)
pytestmark = pytest.mark.django_db(transaction=True)


def _finished(version_id: int) -> ModelVersion | None:
    """The version once its task is over: active or rejected by the gate, or failed."""
    version = ModelVersion.objects.get(pk=version_id)
    # `ready` is passed through on the way to the quality gate's verdict.
    done = (Status.ACTIVE, Status.REJECTED, Status.FAILED)
    return version if version.status in done else None


def _train_active_version() -> ModelVersion:
    """A first version trained in-process, so there is something serving."""
    version = model_version_train_now(
        trigger=ModelVersion.Trigger.COMMAND, params=FAST_TRAINING
    )
    assert version.status == Status.ACTIVE, version.error
    return version


def test_two_simultaneous_triggers_produce_one_run(
    small_dataset, artifacts_dir, celery_worker
):
    barrier = threading.Barrier(2)
    results: dict[str, tuple[int, bool]] = {}

    def trigger(name: str, kind: str) -> None:
        try:
            barrier.wait()
            version, created = model_version_request(trigger=kind, params=FAST_TRAINING)
            results[name] = (version.pk, created)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=trigger, args=("api", ModelVersion.Trigger.API)),
        threading.Thread(
            target=trigger, args=("schedule", ModelVersion.Trigger.SCHEDULE)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    (first_id, first_created), (second_id, second_created) = results.values()
    assert first_id == second_id
    assert sorted([first_created, second_created]) == [False, True]
    version = wait_for(lambda: _finished(first_id), what="the run to finish")
    assert version.status == Status.ACTIVE, version.error
    assert ModelVersion.objects.count() == 1

    # A redelivered message of the finished version does nothing.
    assert train_model_task.apply(args=[first_id]).get() == Status.ACTIVE
    assert ModelVersion.objects.count() == 1


def test_a_request_while_one_is_in_flight_returns_it(transactional_db, artifacts_dir):
    running = ModelVersion.objects.create(
        status=Status.TRAINING, heartbeat_at=timezone.now()
    )

    version, created = model_version_request(trigger=ModelVersion.Trigger.API)

    assert (version.pk, created) == (running.pk, False)
    assert ModelVersion.objects.count() == 1


def test_failed_training_leaves_active_version_and_next_run_succeeds(
    small_dataset, artifacts_dir, celery_worker, monkeypatch
):
    active = _train_active_version()

    def explode(*args, **kwargs):
        raise RuntimeError("planted failure in the engine")

    monkeypatch.setattr("recommendations.engine.train.train_model", explode)
    failed, created = model_version_request(
        trigger=ModelVersion.Trigger.API, params=FAST_TRAINING
    )
    assert created
    failed = wait_for(lambda: _finished(failed.pk), what="the failing run")
    assert failed.status == Status.FAILED
    assert "planted failure in the engine" in failed.error
    assert ModelVersion.objects.get(status=Status.ACTIVE).pk == active.pk

    monkeypatch.undo()
    retry, created = model_version_request(
        trigger=ModelVersion.Trigger.API, params=FAST_TRAINING
    )
    assert created and retry.pk != failed.pk
    retry = wait_for(lambda: _finished(retry.pk), what="the next run")
    assert retry.status in FINISHED, retry.error
    # A redelivered message of the failed version does nothing.
    assert train_model_task.apply(args=[failed.pk]).get() == Status.FAILED


def test_stale_training_is_reaped_before_the_next_request(
    small_dataset, artifacts_dir, celery_worker
):
    active = _train_active_version()
    long_ago = timezone.now() - timedelta(
        seconds=settings.RECSITE["STALE_RUN_AFTER_S"] + 60
    )
    stuck = ModelVersion.objects.create(
        status=Status.TRAINING, started_at=long_ago, heartbeat_at=long_ago
    )

    version, created = model_version_request(
        trigger=ModelVersion.Trigger.API, params=FAST_TRAINING
    )

    assert created and version.pk != stuck.pk
    stuck.refresh_from_db()
    assert stuck.status == Status.FAILED
    assert stuck.error.startswith("worker lost: heartbeat stale since")
    assert ModelVersion.objects.get(status=Status.ACTIVE).pk == active.pk
    version = wait_for(lambda: _finished(version.pk), what="the next run")
    assert version.status in FINISHED, version.error


def _test_database_url() -> str:
    db = connections["default"].settings_dict
    return database_url(
        db, host=db.get("HOST") or "127.0.0.1", port=int(db.get("PORT") or 5432)
    )


@pytest.mark.slow
def test_worker_killed_mid_training_is_reaped_and_next_run_succeeds(
    small_dataset, artifacts_dir, celery_test_app, settings
):
    """A real worker process is SIGKILLed while training; the version is reaped."""
    active = _train_active_version()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "recsite.settings.test",
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": broker_url_for_tests(),
        "ARTIFACTS_DIR": str(artifacts_dir),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.tasks.stalling_worker",
            "worker",
            "-Q",
            "training",
            "-P",
            "solo",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"doomed-{uuid.uuid4().hex[:8]}@%h",
            "-l",
            "WARNING",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        doomed, created = model_version_request(
            trigger=ModelVersion.Trigger.API, params=FAST_TRAINING
        )
        assert created
        wait_for(
            lambda: ModelVersion.objects.filter(
                pk=doomed.pk, status=Status.TRAINING, heartbeat_at__isnull=False
            ).exists(),
            timeout=60,
            what="the subprocess worker to start training",
        )
    finally:
        worker.send_signal(signal.SIGKILL)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    doomed.refresh_from_db()
    assert doomed.status == Status.TRAINING  # nobody told the database

    # While the heartbeat is fresh the run counts as alive: no second run starts.
    same, created = model_version_request(trigger=ModelVersion.Trigger.API)
    assert (same.pk, created) == (doomed.pk, False)

    settings.RECSITE = {**settings.RECSITE, "STALE_RUN_AFTER_S": 1}
    time.sleep(1.5)
    version, created = model_version_request(
        trigger=ModelVersion.Trigger.API, params=FAST_TRAINING
    )

    assert created and version.pk != doomed.pk
    doomed.refresh_from_db()
    assert doomed.status == Status.FAILED
    assert doomed.error.startswith("worker lost: heartbeat stale since")
    assert ModelVersion.objects.get(status=Status.ACTIVE).pk == active.pk
    with running_worker(celery_test_app):
        version = wait_for(lambda: _finished(version.pk), what="the next run")
    assert version.status in FINISHED, version.error
