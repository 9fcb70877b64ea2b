"""Training service, registry (quality gate, activation, rollback) and `train`."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from recommendations.models import ModelVersion
from recommendations.selectors.training import (
    interaction_arrays_copy,
    interaction_arrays_plain,
    item_metadata_snapshot,
    training_snapshot,
)
from recommendations.services.registry import (
    NOT_ACTIVATABLE,
    ModelVersionError,
    model_version_activate,
    model_version_create,
    quality_gate_passes,
)
from recommendations.services.training import model_version_train
from tests.factories import (
    InteractionFactory,
    InteractionTypeFactory,
    ItemFactory,
)
from tests.recommendations.conftest import FAST_PARAMS, artifact_dir, train_fast


@pytest.mark.django_db
def test_copy_extraction_equals_the_plain_values_list_path(loaded):
    # Rows that stress the binary parser: NULL value, negative type, odd timestamps.
    user = loaded["user_pk"]["user-000001"]
    item = loaded["item_pk"]["item-000001"]
    dislike = InteractionTypeFactory(name="dislike", weight=4.0, is_positive=False)
    InteractionFactory(
        user_id=user,
        item_id=item,
        type=dislike,
        value=None,
        timestamp=timezone.now() - timedelta(days=4000, microseconds=7),
    )
    InteractionFactory(user_id=user, item_id=item, type=dislike, value=-2.5)
    fast, plain = interaction_arrays_copy(), interaction_arrays_plain()
    assert len(fast) == len(plain) == loaded["log"].n_rows + 2
    for name in ("user_ids", "item_ids", "type_ids", "ids"):
        assert np.array_equal(getattr(fast, name), getattr(plain, name)), name
        assert getattr(fast, name).dtype == np.int64
    assert np.array_equal(np.isnan(fast.values), np.isnan(plain.values))
    assert np.allclose(np.nan_to_num(fast.values), np.nan_to_num(plain.values))
    assert np.allclose(fast.timestamps, plain.timestamps, rtol=0, atol=1e-6)
    # The watermark bounds the snapshot.
    cut = int(plain.ids[10])
    assert np.array_equal(interaction_arrays_copy(watermark=cut).ids, plain.ids[:11])


@pytest.mark.django_db
def test_copy_extraction_of_an_empty_table():
    arrays = interaction_arrays_copy()
    assert len(arrays) == 0 and arrays.values.dtype == np.float32


@pytest.mark.django_db
def test_item_snapshot_carries_category_and_tag_names_in_one_query(
    django_assert_num_queries,
):
    ItemFactory(external_id="a", categories=["books", "art"], tags=["new"])
    ItemFactory(external_id="b")
    with django_assert_num_queries(1):
        meta = item_metadata_snapshot()
    by_id = dict(zip(meta.external_ids, range(len(meta))))
    assert meta.categories[by_id["a"]] == ["art", "books"]
    assert meta.tags[by_id["a"]] == ["new"]
    assert meta.categories[by_id["b"]] == []
    assert meta.attributes[by_id["b"]] == {"price": 10}
    some = item_metadata_snapshot(item_pks=[int(meta.ids[by_id["a"]])])
    assert some.external_ids == ["a"] and some.tags == [["new"]]


@pytest.mark.django_db
def test_snapshot_records_the_watermark_and_statistics(loaded):
    snapshot = training_snapshot()
    assert snapshot.watermark == int(interaction_arrays_plain().ids.max())
    assert snapshot.stats["n_interactions"] == loaded["log"].n_rows
    assert snapshot.stats["n_items"] == len(loaded["item_pk"])


@pytest.mark.django_db
def test_training_end_to_end_publishes_an_active_version(loaded):
    calls = []
    version = model_version_create(
        trigger=ModelVersion.Trigger.COMMAND, params=FAST_PARAMS
    )
    assert version.status == "queued"
    version = model_version_train(
        version_id=version.pk, progress=lambda s, p: calls.append(p)
    )
    assert version.status == ModelVersion.Status.ACTIVE, version.error
    assert version.activated_at and version.finished_at and version.heartbeat_at
    assert version.progress_percent == 100
    for key in ("precision_at_10", "recall_at_10", "ndcg_at_10"):
        assert 0 < version.metrics[key] <= 1
    assert set(version.timings) >= {
        "extract",
        "features+fit",
        "evaluate",
        "save",
        "total",
    }
    assert version.params["max_epochs"] == 5 and version.params["search"] is False
    assert version.data_stats["n_interactions"] == loaded["log"].n_rows
    assert version.data_watermark is not None
    path = artifact_dir(version)
    assert path.is_dir() and (path / "manifest.json").is_file()
    assert path.name.startswith(f"v{version.pk}-")
    # The callback saw the bar move forward to the end.
    assert calls and calls == sorted(calls) and calls[-1] >= 95


@pytest.mark.django_db
def test_a_trained_version_stays_in_flight_until_the_quality_gate_decides(
    loaded, monkeypatch
):
    """Pages and `train --wait` follow a version while it is in flight; between the
    end of training (ready) and the gate's decision a moment later it still is, or
    a page loaded in that moment would show "ready" and stop following."""
    from recommendations.services import training

    seen = []
    real_gate = training.model_version_apply_quality_gate

    def gate(*, version):
        seen.append((version.status, version.progress_stage, version.in_flight))
        return real_gate(version=version)

    monkeypatch.setattr(training, "model_version_apply_quality_gate", gate)
    version = train_fast()
    assert seen == [("ready", ModelVersion.STAGE_GATE, True)]
    assert version.status == "active" and not version.in_flight
    assert version.progress_stage == "done"

    # A gate that fails leaves the version ready for staff, no longer in flight.
    def broken_gate(*, version):
        raise RuntimeError("gate down")

    monkeypatch.setattr(training, "model_version_apply_quality_gate", broken_gate)
    second = train_fast()
    assert second.status == "ready" and not second.in_flight
    assert second.progress_stage == "done"


@pytest.mark.django_db
def test_a_version_that_is_not_queued_is_left_alone(loaded):
    version = train_fast()
    again = model_version_train(version_id=version.pk)
    assert (
        again.status == version.status and again.artifact_path == version.artifact_path
    )


@pytest.mark.django_db
def test_quality_gate_rejects_a_worse_version_and_staff_can_still_activate_it(loaded):
    first = train_fast()
    # Pretend the active model is excellent: the next, normal one is much worse.
    ModelVersion.objects.filter(pk=first.pk).update(
        metrics={**first.metrics, "ndcg_at_10": 0.99}
    )
    second = train_fast()
    assert second.status == ModelVersion.Status.REJECTED
    assert ModelVersion.objects.get(status="active").pk == first.pk

    model_version_activate(version=second)
    assert ModelVersion.objects.get(pk=second.pk).status == "active"
    assert ModelVersion.objects.get(pk=first.pk).status == "ready"
    # Rollback is activating the older one again.
    model_version_activate(version=first)
    assert ModelVersion.objects.get(status="active").pk == first.pk
    assert ModelVersion.objects.get(pk=second.pk).status == "ready"


def test_quality_gate_tolerance():
    assert quality_gate_passes(
        candidate_metrics={"ndcg_at_10": 0.1}, active_metrics=None, tolerance=0.05
    )
    assert quality_gate_passes(
        candidate_metrics={"ndcg_at_10": 0.96},
        active_metrics={"ndcg_at_10": 1.0},
        tolerance=0.05,
    )
    assert not quality_gate_passes(
        candidate_metrics={"ndcg_at_10": 0.94},
        active_metrics={"ndcg_at_10": 1.0},
        tolerance=0.05,
    )
    assert not quality_gate_passes(
        candidate_metrics={}, active_metrics={"ndcg_at_10": 0.2}, tolerance=0.05
    )


@pytest.mark.django_db
def test_a_failed_training_keeps_its_error_and_never_touches_the_active_version(loaded):
    first = train_fast()
    broken = train_fast(loss="no-such-loss")
    assert broken.status == ModelVersion.Status.FAILED
    assert "no-such-loss" in broken.error or "loss" in broken.error
    assert broken.finished_at is not None and not broken.artifact_path
    assert ModelVersion.objects.get(status="active").pk == first.pk
    with pytest.raises(ModelVersionError, match="failed"):
        model_version_activate(version=broken)


@pytest.mark.django_db
def test_training_with_no_data_fails_cleanly():
    version = train_fast()
    assert version.status == ModelVersion.Status.FAILED and version.error


@pytest.mark.django_db
def test_single_flight_returns_the_version_in_flight():
    first = model_version_create()
    assert model_version_create().pk == first.pk
    ModelVersion.objects.filter(pk=first.pk).update(status="training")
    assert model_version_create().pk == first.pk
    ModelVersion.objects.filter(pk=first.pk).update(status="failed")
    assert model_version_create().pk != first.pk


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["queued", "training", "failed"])
def test_activation_is_refused_for_versions_that_never_finished(status):
    version = ModelVersion.objects.create(status=status)
    with pytest.raises(ModelVersionError) as info:
        model_version_activate(version=version)
    assert str(info.value) == NOT_ACTIVATABLE.format(id=version.pk, status=status)


@pytest.mark.django_db
def test_train_command_waits_and_reports(loaded, capsys):
    call_command(
        "train",
        "--wait",
        "--budget",
        "30",
        *[f"--set={k}={str(v).lower()}" for k, v in FAST_PARAMS.items()],
    )
    version = ModelVersion.objects.get()
    assert version.status == "active" and version.trigger == "command"
    assert math.isclose(version.params["time_budget_s"], 30.0)
    assert f"Model version {version.pk}: active" in capsys.readouterr().out


@pytest.mark.django_db
def test_train_command_without_wait_enqueues_the_celery_task(
    monkeypatch, django_capture_on_commit_callbacks
):
    from recommendations import tasks

    sent = []
    monkeypatch.setattr(tasks.train_model_task, "delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("train")
    version = ModelVersion.objects.get()
    assert version.status == "queued" and sent == [version.pk]
