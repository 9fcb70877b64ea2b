"""Model registry endpoints, the serving holder, health and fallbacks."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommendations import serving
from recommendations.models import ModelVersion
from recommendations.services.registry import model_version_activate
from tests.recommendations.conftest import artifact_dir, train_fast

pytestmark = pytest.mark.django_db

TRAIN_URL = "/api/v1/models/train/"


def _rec_url(user_id: str = "user-000001") -> str:
    return reverse("user-recommendations-list", kwargs={"user_id": user_id})


def _corrupt(version: ModelVersion) -> None:
    """Truncate every array file of a published version."""
    for path in artifact_dir(version).glob("*.npy"):
        path.write_bytes(path.read_bytes()[:20])


# ------------------------------------------------------------------ registry API


def test_train_endpoint_is_single_flight_and_enqueues_once(
    api_client, monkeypatch, django_capture_on_commit_callbacks
):
    from recommendations import tasks

    sent = []
    monkeypatch.setattr(tasks.train_model_task, "delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        first = api_client.post(TRAIN_URL, {"time_budget_s": 60}, format="json")
        second = api_client.post(TRAIN_URL, format="json")
    assert first.status_code == second.status_code == 202
    assert first.json()["created"] is True and second.json()["created"] is False
    assert first.json()["id"] == second.json()["id"] and sent == [first.json()["id"]]
    version = ModelVersion.objects.get()
    assert version.status == "queued" and version.params == {"time_budget_s": 60.0}


@pytest.mark.parametrize("body", [{"time_budget_s": 0}, {"time_budget_s": "x"}, [1]])
def test_train_endpoint_rejects_bad_bodies(api_client, body):
    assert api_client.post(TRAIN_URL, body, format="json").status_code == 400


def test_model_endpoints_need_a_write_key_to_post(read_only_client, public_client):
    assert read_only_client.get("/api/v1/models/").status_code == 200
    assert read_only_client.post(TRAIN_URL).status_code == 403
    assert public_client.get("/api/v1/models/").status_code == 403
    assert public_client.post(TRAIN_URL).status_code == 403


def test_list_detail_activate_and_rollback_over_http(trained, api_client):
    first = trained["version"]
    second = train_fast()
    listing = api_client.get("/api/v1/models/").json()
    assert [v["id"] for v in listing["results"]] == [second.pk, first.pk]
    assert listing["results"][0]["status"] == "active"
    detail = api_client.get(f"/api/v1/models/{first.pk}/").json()
    assert detail["status"] == "ready" and "ndcg_at_10" in detail["metrics"]
    assert set(detail["timings"]) >= {"extract", "features+fit", "evaluate", "save"}

    response = api_client.post(f"/api/v1/models/{first.pk}/activate/")
    assert response.status_code == 200 and response.json()["status"] == "active"
    body = api_client.get(_rec_url()).json()
    assert body["model_version"] == first.pk
    assert api_client.get("/api/v1/models/999999/").status_code == 404


@pytest.mark.parametrize("status", ["queued", "training", "failed"])
def test_activating_an_unfinished_version_is_409_with_a_message(api_client, status):
    version = ModelVersion.objects.create(status=status)
    response = api_client.post(f"/api/v1/models/{version.pk}/activate/")
    assert response.status_code == 409
    assert status in response.json()["detail"]


# ------------------------------------------------------------------ serving holder


def test_health_reports_none_then_ok(loaded, anon_client):
    assert serving.model_health()["status"] == "none"
    version = train_fast()
    health = anon_client.get("/api/v1/health/").json()["model"]
    assert health["status"] == "ok" and health["version"] == version.pk
    assert health["loaded_at"] and health["error"] is None


def test_a_corrupt_active_version_keeps_the_previous_model_serving(trained, api_client):
    first = trained["version"]
    assert api_client.get(_rec_url()).json()["model_version"] == first.pk
    second = train_fast()
    _corrupt(second)
    response = api_client.get(_rec_url())
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == first.pk and len(body["items"]) == 10
    health = serving.model_health()
    assert health["status"] == "fallback" and health["version"] == first.pk
    assert health["active_version"] == second.pk and health["error"]
    overall = api_client.get("/api/v1/health/").json()
    assert overall["status"] == "degraded" and overall["model"]["status"] == "fallback"


def test_a_corrupt_only_version_falls_back_to_popularity(trained, api_client):
    _corrupt(trained["version"])
    for url in (_rec_url(), "/api/v1/recommendations/popular/"):
        response = api_client.get(url)
        assert response.status_code == 200
        body = response.json()
        assert body["strategy"] == "popular" and body["model_version"] is None
        assert len(body["items"]) == 10
    similar = api_client.get(
        reverse("item-similar-list", kwargs={"item_id": "item-000001"})
    )
    assert similar.status_code == 200
    health = serving.model_health()
    assert health["status"] == "error" and "failed to load" in health["error"]


def test_missing_artifacts_fall_back_too(trained, api_client):
    import shutil

    shutil.rmtree(artifact_dir(trained["version"]))
    assert api_client.get(_rec_url()).status_code == 200
    assert serving.model_health()["status"] == "error"


def test_activation_swaps_the_served_model_and_requests_keep_one_reference(trained):
    first = trained["version"]
    held = serving.current_model()
    assert held.version_id == first.pk
    second = train_fast()
    assert serving.current_model().version_id == second.pk
    # The reference a request took earlier still works after the swap.
    assert held.recommender.popular(k=3).item_pks.size == 3
    model_version_activate(version=ModelVersion.objects.get(pk=first.pk))
    assert serving.current_model().version_id == first.pk


def test_serving_works_when_redis_is_down(trained, api_client, monkeypatch):
    from django.core.cache import cache

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    for name in ("get", "set", "add", "delete"):
        monkeypatch.setattr(cache, name, down)
    response = api_client.get(_rec_url())
    assert response.status_code == 200
    assert response.json()["model_version"] == trained["version"].pk


def test_a_broker_outage_keeps_the_version_queued_for_the_reaper(
    api_client, monkeypatch, django_capture_on_commit_callbacks
):
    from recommendations import tasks

    def down(pk):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.train_model_task, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(TRAIN_URL, format="json")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.status == "queued" and not version.error
    # Single flight holds: asking again returns the same, still queued version.
    again = api_client.post(TRAIN_URL, format="json").json()
    assert again["id"] == version.pk and again["created"] is False
