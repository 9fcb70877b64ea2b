"""Model versions: charts, activate / roll back, "train now" and its progress."""

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from recommendations.engine.artifacts import MANIFEST
from recommendations.models import ModelVersion
from tests.factories import ModelVersionFactory

MAX_VERSION_LIST_QUERIES = 10
MAX_VERSION_PAGE_QUERIES = 12


def _trained(tmp_path, n: int, **fields) -> ModelVersion:
    directory = tmp_path / f"v{n}"
    directory.mkdir()
    (directory / MANIFEST).write_text("{}")  # what "published" means to the registry
    defaults = {
        "status": ModelVersion.Status.READY,
        "artifact_path": str(directory),
        "metrics": {
            "precision_at_10": 0.1 + n / 100,
            "recall_at_10": 0.2,
            "ndcg_at_10": 0.15 + n / 100,
            "coverage": 0.3,
            "cold_precision_at_10": 0.05,
            "cold_ndcg_at_10": 0.07,
        },
        "data_stats": {"n_users": 1000, "n_items": 2000, "n_interactions": 50000},
        "timings": {
            "extract": 0.2,
            "features+fit": 10.0 + n,
            "evaluate": 5.0,
            "save": 0.1,
            "total": 15.3 + n,
        },
    }
    return ModelVersionFactory(**{**defaults, **fields})


@pytest.mark.django_db
def test_changelist_charts_metrics_and_training_time(
    admin_client, tmp_path, django_assert_max_num_queries
):
    versions = [_trained(tmp_path, n) for n in range(8)]
    with django_assert_max_num_queries(MAX_VERSION_LIST_QUERIES):
        response = admin_client.get(
            reverse("admin:recommendations_modelversion_changelist")
        )
    html = response.content.decode()
    assert response.status_code == 200
    for label in (
        "precision@10",
        "NDCG@10",
        "coverage",
        "cold NDCG@10",
        "Training time (s)",
    ):
        assert label in html
    assert html.count('class="rs-chart rs-line-chart"') == 3
    assert f"v{versions[-1].pk}: " in html  # a point's tooltip names its version
    assert '<td class="field-ndcg_at_10">0.220</td>' in html  # the newest, in the table
    assert reverse("admin:recommendations_modelversion_train") in html


@pytest.mark.django_db
def test_version_page_highlights_it_and_is_read_only(
    admin_client, tmp_path, django_assert_max_num_queries
):
    versions = [_trained(tmp_path, n) for n in range(3)]
    url = reverse("admin:recommendations_modelversion_change", args=[versions[1].pk])
    with django_assert_max_num_queries(MAX_VERSION_PAGE_QUERIES):
        response = admin_client.get(url)
    html = response.content.decode()
    assert 'class="rs-highlight"' in html
    assert f"Where v{versions[1].pk}&#x27;s training time went" in html
    assert "features+fit" in html and "50,000" in html
    assert "<textarea" not in html and 'name="_save"' not in html
    assert 'id="rs-activate"' in html


@pytest.mark.django_db
def test_activate_button_and_roll_back(admin_client, tmp_path):
    old = _trained(tmp_path, 1)
    new = _trained(tmp_path, 2, status=ModelVersion.Status.ACTIVE)

    response = admin_client.post(
        reverse("admin:recommendations_modelversion_activate", args=[old.pk]),
        follow=True,
    )

    assert f"Version v{old.pk} is now the active model" in response.content.decode()
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == ("active", "ready")


@pytest.mark.django_db
def test_activate_action_needs_one_version_and_reports_refusals(admin_client, tmp_path):
    a, b = _trained(tmp_path, 1), _trained(tmp_path, 2)
    failed = ModelVersionFactory(status=ModelVersion.Status.FAILED, error="boom")
    changelist = reverse("admin:recommendations_modelversion_changelist")

    two = admin_client.post(
        changelist,
        {"action": "activate_selected", helpers.ACTION_CHECKBOX_NAME: [a.pk, b.pk]},
        follow=True,
    )
    refused = admin_client.post(
        changelist,
        {"action": "activate_selected", helpers.ACTION_CHECKBOX_NAME: [failed.pk]},
        follow=True,
    )

    assert "Select exactly one version" in two.content.decode()
    assert (
        "only a ready, rejected or previously active version"
        in refused.content.decode()
    )
    assert not ModelVersion.objects.filter(status="active").exists()


@pytest.mark.django_db
def test_train_now_queues_one_version_and_follows_it(
    admin_client, django_capture_on_commit_callbacks
):
    train_url = reverse("admin:recommendations_modelversion_train")
    assert "Train now" in admin_client.get(train_url).content.decode()

    # The task would be sent on commit; the test's transaction never commits.
    response = admin_client.post(train_url)

    version = ModelVersion.objects.get()
    assert (version.status, version.trigger) == ("queued", "admin")
    assert response.status_code == 302
    assert response.url == reverse(
        "admin:recommendations_modelversion_change", args=[version.pk]
    )
    page = admin_client.get(response.url).content.decode()
    assert f"Training v{version.pk} queued" in page
    assert 'id="rs-training-progress"' in page

    again = admin_client.post(train_url, follow=True)
    assert ModelVersion.objects.count() == 1  # single flight
    assert f"Version v{version.pk} is already queued" in again.content.decode()


@pytest.mark.django_db
def test_progress_endpoint_reports_stage_and_percent(admin_client):
    version = ModelVersionFactory(
        status=ModelVersion.Status.TRAINING,
        progress_stage="fit",
        progress_percent=42.25,
    )
    data = admin_client.get(
        reverse("admin:recommendations_modelversion_progress", args=[version.pk])
    ).json()
    assert data["status"] == "training" and data["stage"] == "fit"
    assert data["percent"] == 42.2 or data["percent"] == 42.3
    assert data["in_flight"] is True


@pytest.mark.django_db
def test_progress_endpoint_follows_a_version_waiting_for_the_quality_gate(admin_client):
    url = "admin:recommendations_modelversion_progress"
    waiting = ModelVersionFactory(
        status=ModelVersion.Status.READY, progress_stage=ModelVersion.STAGE_GATE
    )
    data = admin_client.get(reverse(url, args=[waiting.pk])).json()
    assert data["status"] == "ready" and data["in_flight"] is True
    page = admin_client.get(
        reverse("admin:recommendations_modelversion_change", args=[waiting.pk])
    )
    assert 'id="rs-training-progress"' in page.content.decode()

    done = ModelVersionFactory(status=ModelVersion.Status.READY, progress_stage="done")
    assert admin_client.get(reverse(url, args=[done.pk])).json()["in_flight"] is False


@pytest.mark.django_db
def test_progress_endpoint_needs_a_staff_login(client):
    version = ModelVersionFactory()
    url = reverse("admin:recommendations_modelversion_progress", args=[version.pk])
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response.url
