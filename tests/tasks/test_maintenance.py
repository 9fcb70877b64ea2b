"""Registry upkeep: reaping, retrain-if-changed, pruning, popularity, retries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError
from django.utils import timezone

from recommendations.models import ModelVersion
from recommendations.services.maintenance import (
    model_version_request,
    model_versions_prune,
    model_versions_reap_stale,
    popularity_cached,
    popularity_refresh,
    training_data_changed,
)
from recommendations.tasks import train_model_task
from tests.factories import (
    EndUserFactory,
    InteractionFactory,
    InteractionTypeFactory,
    ItemFactory,
    ModelVersionFactory,
)

Status = ModelVersion.Status


def _ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


@pytest.mark.django_db
def test_reaper_fails_only_runs_whose_worker_is_gone(settings):
    settings.RECSITE = {**settings.RECSITE, "STALE_RUN_AFTER_S": 600}
    active = ModelVersionFactory(status=Status.ACTIVE, heartbeat_at=_ago(days=3))
    stale = ModelVersionFactory(status=Status.TRAINING, heartbeat_at=_ago(minutes=11))

    assert model_versions_reap_stale() == [stale.pk]

    stale.refresh_from_db()
    active.refresh_from_db()
    assert stale.status == Status.FAILED
    assert stale.error.startswith("worker lost: heartbeat stale since ")
    assert stale.finished_at is not None
    assert active.status == Status.ACTIVE

    alive = ModelVersionFactory(status=Status.TRAINING, heartbeat_at=_ago(minutes=9))
    assert model_versions_reap_stale() == []
    alive.refresh_from_db()
    assert alive.status == Status.TRAINING


@pytest.mark.django_db
def test_reaper_fails_a_version_queued_for_too_long(settings):
    settings.RECSITE = {**settings.RECSITE, "STALE_QUEUED_AFTER_S": 3600}
    lost = ModelVersionFactory(status=Status.QUEUED)
    ModelVersion.objects.filter(pk=lost.pk).update(created_at=_ago(hours=2))

    assert model_versions_reap_stale() == [lost.pk]
    lost.refresh_from_db()
    assert lost.error.startswith("never started: no training worker picked it up")


@pytest.mark.django_db
def test_scheduled_retrain_skips_unchanged_data_but_api_always_runs(
    django_capture_on_commit_callbacks,
):
    interaction = InteractionFactory()
    ModelVersionFactory(
        status=Status.ACTIVE,
        data_watermark=interaction.pk,
        started_at=timezone.now(),  # the snapshot saw everything created so far
    )
    assert not training_data_changed()
    assert model_version_request(trigger=ModelVersion.Trigger.SCHEDULE) == (None, False)

    with django_capture_on_commit_callbacks() as callbacks:
        version, created = model_version_request(trigger=ModelVersion.Trigger.API)
    assert created and version.trigger == ModelVersion.Trigger.API
    assert len(callbacks) == 1  # the training task is sent once the row is committed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    ["interaction", "item", "user", "interaction_type"],
)
def test_any_data_change_makes_the_scheduled_retrain_run(change):
    interaction = InteractionFactory()
    ModelVersionFactory(
        status=Status.READY,
        data_watermark=interaction.pk,
        started_at=timezone.now(),  # the snapshot saw everything created so far
    )
    assert not training_data_changed()
    if change == "interaction":
        InteractionFactory(user=interaction.user, item=interaction.item)
    elif change == "item":
        ItemFactory()
    elif change == "user":
        EndUserFactory()
    else:
        InteractionTypeFactory(name="share")
    assert training_data_changed()


@pytest.mark.django_db
def test_scheduled_retrain_runs_when_only_failed_versions_exist():
    InteractionFactory()
    ModelVersionFactory(status=Status.FAILED, data_watermark=10**9)
    assert training_data_changed()


@pytest.mark.django_db
def test_prune_keeps_active_recent_and_in_flight_versions(
    artifacts_dir, django_capture_on_commit_callbacks
):
    def version(status, **fields):
        v = ModelVersionFactory(status=status, **fields)
        directory = artifacts_dir / f"v{v.pk}"
        directory.mkdir()
        (directory / "model.npy").write_bytes(b"x")
        v.artifact_path = str(directory)
        v.save(update_fields=["artifact_path"])
        return v

    oldest_active = version(Status.ACTIVE)
    old = [version(Status.READY), version(Status.REJECTED)]
    recent = [version(Status.READY), version(Status.REJECTED)]
    training = version(Status.TRAINING)
    old_failed = version(Status.FAILED)
    ModelVersion.objects.filter(pk=old_failed.pk).update(created_at=_ago(days=30))
    new_failed = version(Status.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        deleted = model_versions_prune(keep=2, failed_after_days=14)

    assert sorted(deleted) == sorted([v.pk for v in old] + [old_failed.pk])
    remaining = set(ModelVersion.objects.values_list("pk", flat=True))
    assert remaining == {
        oldest_active.pk,
        *(v.pk for v in recent),
        training.pk,
        new_failed.pk,
    }
    for v in [*old, old_failed]:
        assert not Path(v.artifact_path).exists()
    assert Path(oldest_active.artifact_path).exists()


@pytest.mark.django_db
def test_prune_never_deletes_outside_the_artifacts_dir(artifacts_dir, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    ModelVersionFactory(status=Status.READY, artifact_path=str(outside))
    ModelVersionFactory(status=Status.READY)

    deleted = model_versions_prune(keep=1)

    assert len(deleted) == 1
    assert outside.exists()


@pytest.mark.django_db
def test_popularity_refresh_ranks_by_recent_positive_interactions():
    view = InteractionTypeFactory(name="view", weight=1.0, is_positive=True)
    dislike = InteractionTypeFactory(name="dislike", weight=4.0, is_positive=False)
    hot, old_hit, disliked = ItemFactory(), ItemFactory(), ItemFactory()
    for _ in range(3):
        InteractionFactory(item=hot, type=view, timestamp=_ago(hours=1))
    for _ in range(5):
        InteractionFactory(item=old_hit, type=view, timestamp=_ago(days=6))
    for _ in range(9):
        InteractionFactory(item=disliked, type=dislike, timestamp=_ago(hours=1))

    summary = popularity_refresh()

    cached = popularity_cached()
    assert cached["computed_at"] == summary["computed_at"]
    assert [pk for pk, _ in cached["popular"]] == [old_hit.pk, hot.pk]
    assert [pk for pk, _ in cached["trending"]] == [hot.pk, old_hit.pk]


@pytest.mark.django_db
def test_train_task_retries_transient_database_errors(monkeypatch):
    version = ModelVersionFactory(status=Status.QUEUED)
    calls = []

    def flaky(*, version_id, progress=None):
        calls.append(version_id)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        ModelVersion.objects.filter(pk=version_id).update(status=Status.REJECTED)
        return ModelVersion.objects.get(pk=version_id)

    monkeypatch.setattr("recommendations.tasks.model_version_train", flaky)

    assert train_model_task.apply(args=[version.pk]).get() == Status.REJECTED
    assert calls == [version.pk] * 3


@pytest.mark.django_db
def test_train_task_of_a_deleted_version_does_nothing():
    assert train_model_task.apply(args=[987654]).get() == "missing"


@pytest.mark.django_db
def test_fold_in_task_measures_data_newer_than_the_active_model():
    from recommendations.services.maintenance import model_freshness_cached
    from recommendations.tasks import fold_in_recent_task

    seen = InteractionFactory()
    ModelVersionFactory(
        status=Status.ACTIVE, data_watermark=seen.pk, started_at=timezone.now()
    )
    fresh_user = EndUserFactory()
    InteractionFactory(user=fresh_user, item=seen.item)
    InteractionFactory(user=fresh_user, item=ItemFactory())

    figures = fold_in_recent_task.apply().get()

    assert figures == model_freshness_cached()
    assert figures["new_interactions"] == 2
    assert figures["users_with_new_interactions"] == 1
    assert (figures["new_users"], figures["new_items"]) == (1, 1)


@pytest.mark.django_db
def test_prune_deletes_artifacts_named_in_the_artifact_store(
    artifacts_dir, django_capture_on_commit_callbacks
):
    old, kept = (
        ModelVersionFactory(status=Status.READY),
        ModelVersionFactory(status=Status.READY),
    )
    for version in (old, kept):
        name = f"v{version.pk}-0123abcd"  # the name training publishes
        (artifacts_dir / name).mkdir()
        (artifacts_dir / name / "MANIFEST.json").write_text("{}")
        ModelVersion.objects.filter(pk=version.pk).update(artifact_path=name)

    with django_capture_on_commit_callbacks(execute=True):
        assert model_versions_prune(keep=1) == [old.pk]

    assert not (artifacts_dir / f"v{old.pk}-0123abcd").exists()
    assert (artifacts_dir / f"v{kept.pk}-0123abcd").exists()


@pytest.mark.django_db
def test_train_task_gives_up_after_its_retries_and_records_why(monkeypatch):
    from recommendations.tasks import MAX_RETRIES

    version = ModelVersionFactory(status=Status.QUEUED)
    calls = []

    def down(*, version_id, progress=None):
        calls.append(version_id)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("recommendations.tasks.model_version_train", down)

    with pytest.raises(OperationalError):
        train_model_task.apply(args=[version.pk]).get()

    assert len(calls) == MAX_RETRIES + 1
    version.refresh_from_db()
    assert version.status == Status.FAILED
    assert version.error.startswith(f"gave up after {MAX_RETRIES} retries: ")
