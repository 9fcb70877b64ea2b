"""Redis (cache and Celery broker) goes away, then comes back.

A private redis-server replaces the shared one for these tests (CACHES and the
Celery broker point at it), so killing it hurts nobody else. During the outage:
recommendations are still served, interactions are still stored in PostgreSQL,
health says "degraded", and requests that enqueue background work do not fail.
"""

import io
import time

import pytest
from django.core.cache import cache

from recommendations.models import ImportJob, Interaction, ModelVersion
from tests.recommendations.conftest import FAST_PARAMS
from tests.reliability.servers import queue_length

# A request during the outage may pay one failed connection, not a hang.
MAX_SECONDS_DURING_OUTAGE = 3.0


@pytest.fixture
def small_trained(transactional_db, settings, tmp_path):
    """A small catalog, interactions and an active model trained on them."""
    from recommendations.engine import synthetic
    from recommendations.services.demo import demo_data_load
    from recommendations.services.training import model_version_train_now

    settings.RECSITE = {
        **settings.RECSITE,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    log = synthetic.generate(n_users=60, n_items=50, n_interactions=1500, seed=3)
    demo_data_load(log=log)
    version = model_version_train_now(
        trigger=ModelVersion.Trigger.COMMAND, params=dict(FAST_PARAMS)
    )
    assert version.status == ModelVersion.Status.ACTIVE, version.error
    return {"log": log, "version": version}


def _some_minutes_pass(model, pk: int) -> None:
    """Age a row as if beat's next reaper run came ten minutes later."""
    from datetime import timedelta

    from django.utils import timezone

    then = timezone.now() - timedelta(minutes=10)
    model.objects.filter(pk=pk).update(created_at=then, updated_at=then)


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _some_user_and_item(small_trained) -> tuple[str, str]:
    from items.models import Item
    from users.models import EndUser

    user = EndUser.objects.filter(interactions__isnull=False).first()
    item = Item.objects.filter(interactions__isnull=False).first()
    return user.external_id, item.external_id


@pytest.mark.django_db(transaction=True)
def test_without_redis_recommendations_and_interactions_keep_working(
    small_trained, redis_of_our_own, api_client
):
    user, item = _some_user_and_item(small_trained)
    assert api_client.get("/api/v1/health/").json()["status"] == "ok"
    assert api_client.get(f"/api/v1/users/{user}/recommendations/").status_code == 200

    redis_of_our_own.stop()

    health, _ = _timed(lambda: api_client.get("/api/v1/health/"))
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["redis"]["status"] == "down"
    assert health.json()["database"]["status"] == "up"

    for url in (
        f"/api/v1/users/{user}/recommendations/?n=10",
        f"/api/v1/items/{item}/similar/?n=5",
        "/api/v1/recommendations/popular/?n=5",
        "/api/v1/users/somebody-new/recommendations/",
    ):
        response, seconds = _timed(lambda url=url: api_client.get(url))
        assert response.status_code == 200, (url, response.content[:300])
        assert response.json()["items"], url
        assert seconds < MAX_SECONDS_DURING_OUTAGE, (url, seconds)
    personal = api_client.get(f"/api/v1/users/{user}/recommendations/").json()
    assert personal["model_version"] == small_trained["version"].pk

    before = Interaction.objects.count()
    rows = [
        {"user": user, "item": item, "type": "view", "event_id": f"redis-down-{n}"}
        for n in range(50)
    ]
    response, seconds = _timed(
        lambda: api_client.post("/api/v1/interactions/", rows, format="json")
    )
    assert response.status_code == 201, response.content[:300]
    assert response.json()["accepted"] == 50
    assert seconds < MAX_SECONDS_DURING_OUTAGE
    assert Interaction.objects.count() == before + 50
    # Retrying the same batch while Redis is still down stores nothing twice.
    again = api_client.post("/api/v1/interactions/", rows, format="json")
    assert again.status_code in (200, 201) and again.json()["duplicates"] == 50
    assert Interaction.objects.count() == before + 50

    redis_of_our_own.start()
    time.sleep(0.1)
    deadline = time.monotonic() + 10
    while api_client.get("/api/v1/health/").json()["status"] != "ok":
        assert time.monotonic() < deadline, "health did not return to ok"
        time.sleep(0.5)
    cache.set("back", 1)
    assert cache.get("back") == 1


@pytest.mark.django_db(transaction=True)
def test_training_requested_while_the_broker_is_down_is_not_lost(
    redis_of_our_own, api_client
):
    redis_of_our_own.stop()
    response, seconds = _timed(
        lambda: api_client.post("/api/v1/models/train/", {}, format="json")
    )
    assert response.status_code == 202, response.content[:300]
    assert seconds < MAX_SECONDS_DURING_OUTAGE
    version = ModelVersion.objects.get(pk=response.json()["id"])
    # What the API answered is what is stored.
    assert response.json()["status"] == version.status
    # The request is kept: queued until the broker is back (not failed for good).
    assert version.status == ModelVersion.Status.QUEUED, version.error

    redis_of_our_own.start()
    # What beat runs every few minutes: it must send the stranded version again.
    from recommendations.tasks import reap_stale_runs_task

    _some_minutes_pass(ModelVersion, version.pk)
    reap_stale_runs_task()
    assert queue_length(redis_of_our_own.client(), "training") == 1
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_import_uploaded_while_the_broker_is_down_is_not_a_server_error(
    redis_of_our_own, api_client, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    redis_of_our_own.stop()
    upload = io.BytesIO(b"id,title\nbroker-down-1,First\nbroker-down-2,Second\n")
    upload.name = "items.csv"
    response, seconds = _timed(
        lambda: api_client.post(
            "/api/v1/imports/", {"kind": "items", "file": upload}, format="multipart"
        )
    )
    assert response.status_code < 500, response.content[:300]
    assert seconds < MAX_SECONDS_DURING_OUTAGE
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.QUEUED

    redis_of_our_own.start()
    from recommendations.tasks import reap_stale_runs_task

    _some_minutes_pass(ImportJob, job.pk)
    reap_stale_runs_task()
    # The stranded job was sent again once the broker came back.
    assert queue_length(redis_of_our_own.client(), "default") == 1
