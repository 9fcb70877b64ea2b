"""API keys hashed at rest, refused when wrong or revoked; admin needs staff; 429s."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, override_settings
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from users.authentication import INVALID_KEY, ApiKeyAuthentication, hash_key
from users.models import ApiKey
from users.services import api_key_create

TEST_URLS = "tests.security.urls"
ECHO = "/api/v1/test-echo/"
PUBLIC_ECHO = "/api/v1/test-public-echo/"


def _rows_text() -> str:
    """Every column of every API key row, as PostgreSQL stores it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        return repr(cursor.fetchall())


@pytest.mark.django_db
def test_database_holds_no_raw_key():
    keys = [
        api_key_create(name=f"k{kind}", kind=kind)[1] for kind in ApiKey.Kind.values
    ]
    stored = _rows_text()
    for raw_key in keys:
        assert raw_key not in stored
        secret_part = raw_key.split("_", 2)[2]  # rs_<prefix>_<secret>
        assert len(secret_part) >= 40
        assert secret_part not in stored
        assert hash_key(raw_key) in stored


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
@pytest.mark.parametrize(
    "header",
    [
        "Bearer rs_00000000_not-a-real-key",
        "Bearer ",
        "Bearer a b",
        "Bearer " + "x" * 10_000,
        "Bearer ' OR 1=1 --",
        "Bearer \u00e9t\u00e9",
    ],
)
def test_wrong_keys_are_401(header):
    client = APIClient()
    response = client.get(ECHO, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.has_header("WWW-Authenticate")


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
def test_revoked_key_is_401_and_valid_key_is_200():
    api_key, raw_key = api_key_create(name="soon revoked")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get(ECHO).status_code == 200
    api_key.is_active = False
    api_key.save(update_fields=["is_active"])
    response = client.get(ECHO)
    assert response.status_code == 401
    assert response.json()["detail"] == INVALID_KEY


@pytest.mark.django_db
@pytest.mark.parametrize("prepared", [True, False])
def test_the_authenticated_key_is_the_row_of_that_key(prepared, settings, rf):
    # One key of each kind, so a key read with another key's kind would show.
    settings.RECSITE = {**settings.RECSITE, "DB_PREPARED_STATEMENTS": prepared}
    keys = {
        kind: api_key_create(name=f"key {kind}", kind=kind) for kind in ApiKey.Kind
    }
    for kind, (api_key, raw_key) in keys.items():
        request = rf.get("/", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        principal, auth = ApiKeyAuthentication().authenticate(request)
        assert (auth.pk, auth.kind, auth.prefix, auth.name) == (
            api_key.pk,
            kind,
            api_key.prefix,
            f"key {kind}",
        )
        assert principal.username == f"api-key:{api_key.prefix}"
        # the columns it did not read load on access, as with .only()
        assert auth.created_at == api_key.created_at
        assert auth.is_active is True


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
def test_no_key_is_401(anon_client):
    response = anon_client.get(ECHO)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_admin_needs_staff():
    user_model = get_user_model()
    plain = user_model.objects.create_user("plain", password="pw-123456-x")
    staff = user_model.objects.create_user(
        "staff", password="pw-123456-x", is_staff=True
    )
    anonymous = Client().get("/admin/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client = Client()
    client.force_login(plain)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS)
def test_non_staff_session_cannot_use_the_api():
    user = get_user_model().objects.create_user("plain", password="pw-123456-x")
    client = APIClient()
    client.force_login(user)
    assert client.get(ECHO).status_code == 403


def _tiny_rates(**rates: str) -> dict:
    return {**api_settings.user_settings, "DEFAULT_THROTTLE_RATES": rates}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["write", "read_only", "public"])
def test_throttling_answers_429_with_retry_after(kind, settings):
    settings.ROOT_URLCONF = TEST_URLS
    # A private cache prefix: counters of concurrent test runs on the shared Redis
    # must not count against this one.
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"t-{uuid.uuid4().hex}"}
    }
    settings.REST_FRAMEWORK = _tiny_rates(
        write="3/min", read_only="3/min", public="3/min", staff="3/min"
    )
    _, raw_key = api_key_create(name="throttled", kind=kind)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    url = PUBLIC_ECHO if kind == "public" else ECHO
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(url)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "detail" in response.json()
    # Another key has its own budget.
    _, other_key = api_key_create(name="other", kind=kind)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert other.get(url).status_code == 200


@pytest.mark.django_db
def test_a_keys_last_use_is_recorded_at_most_once_a_minute():
    from django.test.utils import CaptureQueriesContext

    from users.authentication import key_cache_clear

    key_cache_clear()
    key, raw_key = api_key_create(name="used")
    assert key.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/v1/items/").status_code == 200
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None  # the admin's "Last used at"
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/items/").status_code == 200
    assert not any("last_used_at" in q["sql"] for q in queries.captured_queries)
    key.refresh_from_db()
    assert key.last_used_at == first
