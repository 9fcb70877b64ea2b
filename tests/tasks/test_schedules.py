"""Default beat schedules: created by migrate, repaired by a command, run by beat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from recommendations.models import ModelVersion
from recommendations.services.maintenance import DEFAULT_PERIODIC_TASKS
from tests.tasks.conftest import wait_for

EXPECTED = {
    "recommendations.tasks.scheduled_retrain_task": ("crontab", "0", "3"),
    "recommendations.tasks.refresh_popularity_task": ("interval", 15, "minutes"),
    "recommendations.tasks.reap_stale_runs_task": ("interval", 5, "minutes"),
    "recommendations.tasks.prune_model_versions_task": ("crontab", "30", "4"),
    "recommendations.tasks.fold_in_recent_task": ("interval", 10, "minutes"),
}


def _schedule_of(task: PeriodicTask) -> tuple:
    if task.crontab_id:
        return ("crontab", task.crontab.minute, task.crontab.hour)
    return ("interval", task.interval.every, task.interval.period)


@pytest.mark.django_db
def test_default_schedules_exist_after_migrate():
    tasks = {
        t.task: t for t in PeriodicTask.objects.select_related("crontab", "interval")
    }
    assert {task: _schedule_of(tasks[task]) for task in EXPECTED} == EXPECTED
    assert all(tasks[task].enabled for task in EXPECTED)
    nightly = tasks["recommendations.tasks.scheduled_retrain_task"]
    assert str(nightly.crontab.timezone) == "UTC"  # TIME_ZONE of the test settings


@pytest.mark.django_db
def test_every_scheduled_task_is_a_registered_celery_task():
    from recsite.celery import app

    app.loader.import_default_modules()
    for spec in DEFAULT_PERIODIC_TASKS:
        assert spec["task"] in app.tasks


@pytest.mark.django_db
def test_setup_command_is_idempotent_keeps_staff_edits_and_repairs():
    before = PeriodicTask.objects.count()
    call_command("setup_periodic_tasks")
    assert PeriodicTask.objects.count() == before

    reaper = PeriodicTask.objects.get(task="recommendations.tasks.reap_stale_runs_task")
    reaper.enabled = False  # a staff member disabled it in the admin
    reaper.save()
    PeriodicTask.objects.filter(
        task="recommendations.tasks.prune_model_versions_task"
    ).delete()

    call_command("setup_periodic_tasks")
    reaper.refresh_from_db()
    assert not reaper.enabled
    assert PeriodicTask.objects.filter(
        task="recommendations.tasks.prune_model_versions_task"
    ).exists()
    assert PeriodicTask.objects.count() == before

    call_command("setup_periodic_tasks", "--reset")
    reaper.refresh_from_db()
    assert reaper.enabled


@pytest.mark.django_db(transaction=True)
def test_a_due_schedule_is_sent_by_beat_and_run_by_the_worker(celery_worker):
    """Beat's DatabaseScheduler sends the due reaper; the worker fails the stale run."""
    # Transactional tests start from flushed tables: the command re-creates what the
    # data migration created.
    call_command("setup_periodic_tasks")
    long_ago = timezone.now() - timedelta(hours=2)
    stuck = ModelVersion.objects.create(
        status=ModelVersion.Status.TRAINING, started_at=long_ago, heartbeat_at=long_ago
    )
    PeriodicTask.objects.filter(
        task="recommendations.tasks.reap_stale_runs_task"
    ).update(last_run_at=timezone.now() - timedelta(hours=1))

    scheduler = DatabaseScheduler(app=celery_worker.app)
    scheduler.tick()

    wait_for(
        lambda: ModelVersion.objects.filter(
            pk=stuck.pk, status=ModelVersion.Status.FAILED
        ).exists(),
        timeout=30,
        what="the reaper sent by beat",
    )
    stuck.refresh_from_db()
    assert stuck.error.startswith("worker lost")
    scheduler.sync()  # beat saves its bookkeeping: the admin shows the run
    reaper = PeriodicTask.objects.get(task="recommendations.tasks.reap_stale_runs_task")
    assert reaper.total_run_count == 1
