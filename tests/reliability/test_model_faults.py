"""Missing or corrupt model artifacts, and erasure: end to end through real services.

Serving must fall back (previous version, else popularity), never answer 500, and say
so in /api/v1/health/ and in the admin. Deleting a user removes their interactions,
and the next trained version has never heard of them.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from recommendations import serving
from recommendations.models import Interaction, ModelVersion
from tests.recommendations.conftest import FAST_PARAMS


@pytest.fixture
def small_data(db, settings, tmp_path):
    from recommendations.engine import synthetic
    from recommendations.services.demo import demo_data_load

    settings.RECSITE = {
        **settings.RECSITE,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "SERVING_REFRESH_S": 0,
        # Any version trained here may be activated: the gate is not under test.
        "ACTIVATION_TOLERANCE": 1.0,
    }
    log = synthetic.generate(n_users=60, n_items=50, n_interactions=1500, seed=5)
    demo_data_load(log=log)
    serving.serving_reset()
    yield log
    serving.serving_reset()


def _train() -> ModelVersion:
    from recommendations.services.training import model_version_train_now

    version = model_version_train_now(
        trigger=ModelVersion.Trigger.COMMAND, params=dict(FAST_PARAMS)
    )
    assert version.status == ModelVersion.Status.ACTIVE, (version.status, version.error)
    return version


def _artifact_dir(version: ModelVersion) -> Path:
    from recommendations.services.registry import artifact_store

    store = artifact_store()
    if store is None:
        return Path(version.artifact_path)
    return Path(store.artifact_local_dir(name=version.artifact_path))


def _user_pks_of(version: ModelVersion) -> np.ndarray:
    """The user mapping stored in a version's artifacts (DB pk per model row)."""
    from recommendations.engine.artifacts import load_artifacts

    return np.asarray(load_artifacts(_artifact_dir(version), mmap=False).user_pks)


def _a_user_with_history() -> str:
    from users.models import EndUser

    return EndUser.objects.filter(interactions__isnull=False).first().external_id


def _corrupt(directory: Path) -> None:
    """Flip bytes in the biggest array file (the checksums in the manifest disagree)."""
    target = max(directory.glob("*.npy"), key=lambda path: path.stat().st_size)
    data = bytearray(target.read_bytes())
    data[-64:] = bytes(64)
    target.write_bytes(bytes(data))


@pytest.mark.django_db
def test_corrupt_new_version_keeps_serving_the_previous_one(small_data, api_client):
    user = _a_user_with_history()
    first = _train()
    response = api_client.get(f"/api/v1/users/{user}/recommendations/")
    assert response.status_code == 200 and response.json()["model_version"] == first.pk

    second = _train()
    _corrupt(_artifact_dir(second))

    response = api_client.get(f"/api/v1/users/{user}/recommendations/?n=10")
    assert response.status_code == 200
    assert response.json()["model_version"] == first.pk
    assert len(response.json()["items"]) == 10
    health = api_client.get("/api/v1/health/").json()
    assert health["status"] == "degraded"
    assert health["model"]["status"] == "fallback"
    assert health["model"]["version"] == first.pk
    assert health["model"]["active_version"] == second.pk
    assert (
        "checksum" in health["model"]["error"] or "corrupt" in health["model"]["error"]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_fresh_process_without_a_loadable_model_serves_popularity(
    small_data, api_client, damage
):
    user = _a_user_with_history()
    version = _train()
    directory = _artifact_dir(version)
    if damage == "deleted":
        shutil.rmtree(directory)
    else:
        _corrupt(directory)
    serving.serving_reset()  # a worker that starts after the damage

    for url in (
        f"/api/v1/users/{user}/recommendations/",
        "/api/v1/recommendations/popular/",
        "/api/v1/items/item-1/similar/",
    ):
        response = api_client.get(url)
        assert response.status_code in (200, 404), (url, response.content[:300])
        assert response.status_code == 200 or "similar" in url
    body = api_client.get(f"/api/v1/users/{user}/recommendations/").json()
    assert body["items"] and body["strategy"] == "popular"
    health = api_client.get("/api/v1/health/").json()
    assert health["status"] == "degraded"
    assert health["model"]["status"] == "error"
    assert health["model"]["active_version"] == version.pk


@pytest.mark.django_db
def test_admin_dashboard_shows_that_the_active_model_cannot_be_loaded(small_data):
    version = _train()
    _corrupt(_artifact_dir(version))
    serving.serving_reset()
    staff = get_user_model().objects.create_user(
        "ops", password="x-Pw-12345", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/")
    assert page.status_code == 200
    text = page.content.decode()
    # The operator sees the serving problem where they look first.
    assert "failed to load" in text, (
        "the dashboard does not show the model load failure"
    )


@pytest.mark.django_db
def test_deleted_user_is_erased_from_data_and_from_the_next_model(
    small_data, api_client
):
    from users.models import EndUser

    first = _train()
    victim = EndUser.objects.filter(interactions__isnull=False).first()
    victim_pk, victim_id = victim.pk, victim.external_id
    assert Interaction.objects.filter(user_id=victim_pk).exists()
    assert victim_pk in _user_pks_of(first)

    response = api_client.delete(f"/api/v1/users/{victim_id}/")
    assert response.status_code == 204
    assert not EndUser.objects.filter(pk=victim_pk).exists()
    assert not Interaction.objects.filter(user_id=victim_pk).exists()

    second = _train()
    assert victim_pk not in _user_pks_of(second)
    # The new version's user mapping is exactly the remaining users.
    remaining = set(EndUser.objects.values_list("pk", flat=True))
    assert set(_user_pks_of(second).tolist()) <= remaining


@pytest.mark.django_db
def test_training_that_raises_leaves_the_active_model_serving(
    small_data, api_client, monkeypatch
):
    import recommendations.engine.train as engine_train

    user = _a_user_with_history()
    good = _train()

    def explode(*args, **kwargs):
        raise MemoryError("simulated: the training ran out of memory")

    monkeypatch.setattr(engine_train, "train_model", explode)
    from recommendations.services.training import model_version_train_now

    broken = model_version_train_now(
        trigger=ModelVersion.Trigger.COMMAND, params=dict(FAST_PARAMS)
    )
    assert broken.status == ModelVersion.Status.FAILED
    assert "simulated" in broken.error
    good.refresh_from_db()
    assert good.status == ModelVersion.Status.ACTIVE
    response = api_client.get(f"/api/v1/users/{user}/recommendations/")
    assert response.status_code == 200 and response.json()["model_version"] == good.pk
    # The failure does not block the next run (single flight is released).
    monkeypatch.undo()
    assert _train().status == ModelVersion.Status.ACTIVE


@pytest.mark.django_db
def test_training_whose_worker_was_killed_is_reaped_and_does_not_block(
    small_data, api_client
):
    from datetime import timedelta

    from django.utils import timezone

    from recommendations.tasks import reap_stale_runs_task

    good = _train()
    long_ago = timezone.now() - timedelta(hours=2)
    # What a SIGKILLed worker leaves behind: a run that stopped beating.
    dead = ModelVersion.objects.create(
        status=ModelVersion.Status.TRAINING, started_at=long_ago, heartbeat_at=long_ago
    )
    blocked = api_client.post("/api/v1/models/train/", {}, format="json")
    # Either the request reaps it first, or the periodic reaper does.
    reap_stale_runs_task()
    dead.refresh_from_db()
    assert dead.status == ModelVersion.Status.FAILED
    assert dead.error
    assert blocked.status_code == 202
    assert blocked.json()["id"] != dead.pk
    good.refresh_from_db()
    assert good.status == ModelVersion.Status.ACTIVE
