"""The admin index is a dashboard: figures, activity, model, schedules, failures."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from recommendations.models import ImportJob, Interaction, ModelVersion
from tests.factories import InteractionFactory, ModelVersionFactory

MAX_DASHBOARD_QUERIES = 14


@pytest.mark.django_db
def test_dashboard_shows_figures_model_schedules_and_failures(admin_client, catalog):
    recent = (
        Interaction.objects.count()
    )  # the fixture's are all within the last 12 hours
    old = timezone.now() - dt.timedelta(days=3)
    InteractionFactory(
        user=catalog["users"][0], item=catalog["items"][0], timestamp=old
    )
    active = ModelVersionFactory(
        status=ModelVersion.Status.ACTIVE,
        activated_at=timezone.now() - dt.timedelta(hours=5),
        metrics={"ndcg_at_10": 0.1234},
    )
    ModelVersionFactory(
        status=ModelVersion.Status.FAILED, error="MemoryError: out of memory"
    )
    ImportJob.objects.create(
        kind="items",
        format="csv",
        file="imports/x.csv",
        original_name="catalog.csv",
        status=ImportJob.Status.FAILED,
        error="line 3: bad JSON",
    )
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(
        name="retrain hourly (test)",
        task="recommendations.tasks.scheduled_retrain_task",
        interval=every_hour,
        enabled=True,
    )

    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    dashboard = response.context["dashboard"]
    assert dashboard["users"] == 6
    assert dashboard["items"] == 12
    assert dashboard["interactions_24h"] == recent
    assert dashboard["interactions_7d"] == recent + 1
    assert '<svg class="rs-chart rs-bar-chart"' in html
    assert f"v{active.pk}</a>" in html and "NDCG@10 0.123" in html
    assert "retrain hourly (test)" in html
    assert "MemoryError: out of memory" in html
    assert "line 3: bad JSON" in html and "catalog.csv" in html
    # The app list (and django-celery-beat's admin) stays on the index.
    assert reverse("admin:django_celery_beat_periodictask_changelist") in html


@pytest.mark.django_db
def test_dashboard_query_count_does_not_grow_with_data(
    admin_client, catalog, django_assert_max_num_queries
):
    with django_assert_max_num_queries(MAX_DASHBOARD_QUERIES):
        response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200


@pytest.mark.django_db
def test_dashboard_renders_on_an_empty_database(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "No data yet" in response.content.decode()
    assert "none yet" in response.content.decode()


@pytest.mark.django_db
def test_dashboard_shows_when_the_active_model_cannot_be_loaded(admin_client, tmp_path):
    broken = tmp_path / "v-broken"
    broken.mkdir()  # no artifacts inside: loading fails
    version = ModelVersionFactory(
        status=ModelVersion.Status.ACTIVE,
        artifact_path=str(broken),
        activated_at=timezone.now(),
    )

    html = admin_client.get(reverse("admin:index")).content.decode()
    page = admin_client.get(
        reverse("admin:recommendations_modelversion_change", args=[version.pk])
    ).content.decode()

    assert 'id="rs-serving"' in html and "failed to load" in html
    assert 'id="rs-serving-problem"' in page and "failed to load" in page


@pytest.mark.django_db
def test_dashboard_shows_how_far_the_model_is_behind(admin_client, monkeypatch):
    from recommendations.services import maintenance

    ModelVersionFactory(status=ModelVersion.Status.ACTIVE, activated_at=timezone.now())
    monkeypatch.setattr(
        maintenance,
        "model_freshness_cached",
        lambda: {"new_interactions": 1234, "new_items": 5, "new_users": 7},
    )
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "1,234 new interactions, 5 new items, 7 new users" in html
