"""PostgreSQL goes away under a running gunicorn, then comes back.

The database is reached through a TCP proxy the test controls; cutting it resets
every open connection and refuses new ones, as a PostgreSQL restart does. During the
outage: 503 with a clear JSON body under /api/, a plain 503 page in the admin, health
"down" — never a traceback. Afterwards the same gunicorn serves again by itself.
"""

import time

import pytest
import requests

from recsite.exceptions import DATABASE_UNAVAILABLE
from tests.factories import InteractionTypeFactory, ItemFactory
from tests.reliability.conftest import admin_session, proxied_env
from tests.reliability.servers import Gunicorn, wait_until

LEAKS = ("Traceback", "OperationalError", "psycopg2", 'File "', "connection to server")


def _assert_no_leak(response: requests.Response) -> None:
    for marker in LEAKS:
        assert marker not in response.text, (marker, response.text[:500])


def _api(base_url: str, key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def _interaction(n: int) -> dict:
    return {
        "user": f"outage-user-{n}",
        "item": "outage-item",
        "type": "view",
        "event_id": f"outage-{n}",
    }


@pytest.mark.django_db(transaction=True)
def test_database_restart_gives_503_then_recovers_without_restart(
    gunicorn_via_proxy, pg_proxy, write_key, staff_credentials
):
    ItemFactory(external_id="outage-item")
    InteractionTypeFactory(name="view")
    base = gunicorn_via_proxy.base_url
    api = _api(base, write_key)
    admin = admin_session(base, *staff_credentials)

    # Healthy: every kind of page works (and holds a persistent DB connection).
    assert (
        requests.get(f"{base}/api/v1/health/", timeout=10).json()["database"]["status"]
        == "up"
    )
    assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 200
    assert api.post(
        f"{base}/api/v1/interactions/", json=_interaction(1), timeout=10
    ).status_code in (200, 201)
    assert admin.get(f"{base}/admin/", timeout=10).status_code == 200

    pg_proxy.cut()
    started = time.monotonic()
    during = {
        "api read": api.get(f"{base}/api/v1/items/", timeout=10),
        "api write": api.post(
            f"{base}/api/v1/interactions/", json=_interaction(2), timeout=10
        ),
        "api auth only": api.get(f"{base}/api/v1/users/", timeout=10),
    }
    for what, response in during.items():
        assert response.status_code == 503, (
            what,
            response.status_code,
            response.text[:300],
        )
        assert response.headers["Content-Type"].startswith("application/json"), what
        assert response.json()["detail"] == DATABASE_UNAVAILABLE, what
        assert response.headers["Retry-After"] == "5"
        _assert_no_leak(response)

    health = requests.get(f"{base}/api/v1/health/", timeout=10)
    assert health.status_code == 503
    assert health.json()["status"] == "down"
    assert health.json()["database"]["status"] == "down"

    page = admin.get(f"{base}/admin/", timeout=10)
    assert page.status_code == 503
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Service unavailable" in page.text
    _assert_no_leak(page)
    # Refused connections answer fast: no request hung on the outage.
    assert time.monotonic() - started < 10

    pg_proxy.restore()
    # The very next requests succeed: gunicorn was not restarted.
    assert (
        requests.get(f"{base}/api/v1/health/", timeout=10).json()["database"]["status"]
        == "up"
    )
    assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 200
    retried = api.post(f"{base}/api/v1/interactions/", json=_interaction(2), timeout=10)
    assert retried.status_code in (200, 201), retried.text[:300]
    assert admin.get(f"{base}/admin/", timeout=10).status_code == 200
    assert gunicorn_via_proxy.process.poll() is None
    assert "Traceback" not in gunicorn_via_proxy.log_text()


@pytest.mark.django_db(transaction=True)
def test_outage_in_the_middle_of_a_persistent_connection_is_503_not_500(
    gunicorn_via_proxy, pg_proxy, write_key
):
    """Several cut/restore cycles, each hitting a worker with a stale connection."""
    ItemFactory(external_id="outage-item")
    InteractionTypeFactory(name="view")
    base = gunicorn_via_proxy.base_url
    api = _api(base, write_key)
    for cycle in range(3):
        assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 200
        pg_proxy.cut()
        statuses = {
            api.get(f"{base}/api/v1/items/", timeout=10).status_code for _ in range(3)
        }
        assert statuses == {503}, (cycle, statuses)
        pg_proxy.restore()
    assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_change_feed_goes_down_with_the_database_and_comes_back(
    pg_proxy, private_redis, write_key, tmp_path
):
    """With the feed on (as in production), a restart turns the in-memory caches off
    and the feed reconnects by itself; notifications then arrive again."""
    from users.models import ApiKey
    from users.services import api_key_revoke

    ItemFactory(external_id="outage-item")
    server = Gunicorn(proxied_env(pg_proxy, private_redis, CHANGE_FEED="1"))
    server.start(tmp_path / "gunicorn.log")
    try:
        base = server.base_url
        api = _api(base, write_key)

        def feed_status() -> str:
            body = requests.get(f"{base}/api/v1/health/", timeout=10).json()
            return body["change_feed"]["status"]

        assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 200
        wait_until(lambda: feed_status() == "live", timeout=20, what="the feed")

        pg_proxy.cut()
        health = requests.get(f"{base}/api/v1/health/", timeout=10)
        assert health.status_code == 503
        # The feed's thread notices the reset connection on its own schedule: a
        # health request can come first on a busy machine, so wait for it.
        wait_until(
            lambda: feed_status() in {"down", "starting"}, timeout=10, what="the feed to go down"
        )
        assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 503

        pg_proxy.restore()
        wait_until(lambda: feed_status() == "live", timeout=30, what="reconnection")
        assert api.get(f"{base}/api/v1/items/", timeout=10).status_code == 200
        # The key is cached again; revoking it reaches the server through the feed.
        api_key_revoke(api_key=ApiKey.objects.get(name="reliability-write"))
        wait_until(
            lambda: api.get(f"{base}/api/v1/items/", timeout=10).status_code == 401,
            timeout=10,
            what="the revocation",
        )
        assert server.process.poll() is None
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
