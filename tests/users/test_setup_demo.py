import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from items.models import Item
from recommendations.models import ModelVersion
from users.authentication import hash_key
from users.management.commands import setup_demo
from users.models import ApiKey


def run_setup_demo(local_dir, monkeypatch, demo_data="0"):
    monkeypatch.setenv("DEMO_DATA", demo_data)
    out = io.StringIO()
    call_command("setup_demo", local_dir=str(local_dir), port="8123", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_creates_a_staff_login_and_an_api_key_and_prints_them(tmp_path, monkeypatch):
    banner = run_setup_demo(tmp_path, monkeypatch)

    password = (tmp_path / "demo_password").read_text().strip()
    raw_key = (tmp_path / "demo_api_key").read_text().strip()
    user = authenticate(username="demo", password=password)
    assert user is not None and user.is_staff and user.is_superuser
    assert ApiKey.objects.get(hashed_key=hash_key(raw_key)).kind == ApiKey.Kind.WRITE
    assert (tmp_path / "demo_password").stat().st_mode & 0o777 == 0o600
    for text in (
        password,
        raw_key,
        "http://127.0.0.1:8123/api/docs/",
        "http://127.0.0.1:8123/admin/",
        "http://127.0.0.1:8123/api/v1/health/",
    ):
        assert text in banner


@pytest.mark.django_db
def test_rerun_keeps_the_same_secrets_without_new_keys(tmp_path, monkeypatch):
    first = run_setup_demo(tmp_path, monkeypatch)
    second = run_setup_demo(tmp_path, monkeypatch)

    assert first == second
    assert ApiKey.objects.filter(name="demo").count() == 1


@pytest.mark.django_db
def test_a_revoked_or_deleted_key_is_replaced(tmp_path, monkeypatch):
    run_setup_demo(tmp_path, monkeypatch)
    old_key = (tmp_path / "demo_api_key").read_text().strip()
    ApiKey.objects.filter(hashed_key=hash_key(old_key)).update(is_active=False)

    banner = run_setup_demo(tmp_path, monkeypatch)

    new_key = (tmp_path / "demo_api_key").read_text().strip()
    assert new_key != old_key and new_key in banner
    assert ApiKey.objects.get(hashed_key=hash_key(new_key)).is_active


@pytest.mark.django_db
def test_a_changed_password_is_reset_to_the_kept_one(tmp_path, monkeypatch):
    run_setup_demo(tmp_path, monkeypatch)
    password = (tmp_path / "demo_password").read_text().strip()
    user = authenticate(username="demo", password=password)
    user.set_password("something-else-entirely")
    user.save()

    run_setup_demo(tmp_path, monkeypatch)

    assert authenticate(username="demo", password=password) is not None


@pytest.mark.django_db
def test_demo_data_is_seeded_only_into_an_empty_catalog_then_trained(
    tmp_path, monkeypatch
):
    calls = []

    def fake_seed(name, **kwargs):
        calls.append(name)
        Item.objects.create(external_id="seeded")

    monkeypatch.setattr(setup_demo, "call_command", fake_seed)
    monkeypatch.setattr(setup_demo, "get_commands", lambda: {"seed_demo": "items"})

    run_setup_demo(tmp_path, monkeypatch, demo_data="0")
    assert calls == []
    assert not ModelVersion.objects.exists()

    banner = run_setup_demo(tmp_path, monkeypatch, demo_data="1")
    assert calls == ["seed_demo"]
    assert ModelVersion.objects.get().status == ModelVersion.Status.QUEUED
    assert "training in the background" in banner

    # Seeded once; the queued training is reused, not duplicated.
    banner = run_setup_demo(tmp_path, monkeypatch, demo_data="1")
    assert calls == ["seed_demo"]
    assert ModelVersion.objects.count() == 1
    assert "training in the background" in banner


@pytest.mark.django_db
def test_a_failed_first_training_is_queued_again_but_not_once_a_model_serves(
    tmp_path, monkeypatch
):
    Item.objects.create(external_id="sku-1")
    run_setup_demo(tmp_path, monkeypatch, demo_data="1")
    ModelVersion.objects.update(status=ModelVersion.Status.FAILED)

    run_setup_demo(tmp_path, monkeypatch, demo_data="1")
    assert ModelVersion.objects.filter(status=ModelVersion.Status.QUEUED).count() == 1

    ModelVersion.objects.update(status=ModelVersion.Status.FAILED)
    ModelVersion.objects.filter(pk=ModelVersion.objects.first().pk).update(
        status=ModelVersion.Status.READY
    )
    banner = run_setup_demo(tmp_path, monkeypatch, demo_data="1")
    assert not ModelVersion.objects.filter(status__in=ModelVersion.IN_FLIGHT).exists()
    assert "training in the background" not in banner
