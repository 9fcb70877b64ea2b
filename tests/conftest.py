"""Shared fixtures: API clients authenticated with each kind of key."""

import pytest
from rest_framework.test import APIClient

from users.models import ApiKey
from users.services import api_key_create


def _client_with(kind: str) -> APIClient:
    _, raw_key = api_key_create(name=f"test-{kind}", kind=kind)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    """A client with no credentials."""
    return APIClient()


@pytest.fixture
def api_client(db) -> APIClient:
    """A client with a read-write key."""
    return _client_with(ApiKey.Kind.WRITE)


@pytest.fixture
def read_only_client(db) -> APIClient:
    """A client with a read-only key."""
    return _client_with(ApiKey.Kind.READ_ONLY)


@pytest.fixture
def public_client(db) -> APIClient:
    """A client with a public (browser) key."""
    return _client_with(ApiKey.Kind.PUBLIC)


@pytest.fixture(autouse=True)
def _fresh_serving_state():
    """Serving keeps the loaded model and small caches per process; tests roll rows back."""
    from recommendations.serving import serving_reset

    serving_reset()
    yield
    serving_reset()


@pytest.fixture(autouse=True)
def _fresh_throttle_tallies():
    """The throttle counts far-from-the-limit requests per process before sending
    them to Redis; tests start with none."""
    from users.throttling import throttle_local_reset

    throttle_local_reset()
    yield
    throttle_local_reset()


@pytest.fixture(autouse=True)
def _migration_rows(request):
    """Put back the interaction types the data migration creates.

    A transactional test (real Celery worker, live server) flushes every table when
    it ends, including rows created by data migrations, so without this the tests
    after it would depend on the order they run in.
    """
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    )
    if uses_db:
        import importlib

        from recommendations.models import InteractionType
        request.getfixturevalue("db")
        seed = importlib.import_module(
            "recommendations.migrations.0002_default_interaction_types"
        )
        InteractionType.objects.bulk_create(
            [
                InteractionType(
                    name=name, weight=weight, is_positive=positive, description=text
                )
                for name, weight, positive, text in seed.DEFAULT_TYPES
            ],
            ignore_conflicts=True,
        )
    yield
