"""Fault injection fixtures: private Redis, a cuttable PostgreSQL proxy, gunicorn."""

import uuid

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection

from tests.reliability.servers import (
    LOOPBACK,
    Gunicorn,
    PrivateRedis,
    TcpProxy,
    celery_broker,
    database_url,
    postgres_upstream,
)
from users.models import ApiKey
from users.services import api_key_create


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test alone (the shared one on 6379 is never stopped)."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_of_our_own(private_redis, settings):
    """CACHES and the Celery broker on the private Redis, for this test only."""
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": private_redis.url,
            "KEY_PREFIX": f"rel-{uuid.uuid4().hex[:8]}",
        }
    }
    with celery_broker(private_redis.url):
        yield private_redis


@pytest.fixture
def pg_proxy(transactional_db):
    """A TCP proxy in front of the test database; `cut()` simulates a restart."""
    proxy = TcpProxy(postgres_upstream(connection.settings_dict))
    proxy.start()
    yield proxy
    proxy.stop()


def proxied_env(pg_proxy, private_redis, **extra: str) -> dict[str, str]:
    """The environment of a server on the test database through `pg_proxy`, with
    the private Redis."""
    return {
        "DATABASE_URL": database_url(
            connection.settings_dict, host=LOOPBACK, port=pg_proxy.port
        ),
        "DB_CONNECT_TIMEOUT": "2",
        "REDIS_URL": private_redis.url,
        "CELERY_BROKER_URL": private_redis.url,
        **extra,
    }


@pytest.fixture
def gunicorn_via_proxy(pg_proxy, private_redis, tmp_path):
    """gunicorn on the test database through `pg_proxy`, with the private Redis."""
    server = Gunicorn(proxied_env(pg_proxy, private_redis))
    server.start(tmp_path / "gunicorn.log")
    yield server
    server.stop()


@pytest.fixture
def write_key(transactional_db) -> str:
    return api_key_create(name="reliability-write", kind=ApiKey.Kind.WRITE)[1]


@pytest.fixture
def staff_credentials(transactional_db) -> tuple[str, str]:
    password = "reliability-Pw-123"
    get_user_model().objects.create_user("ops", password=password, is_staff=True)
    return "ops", password


def admin_session(base_url: str, username: str, password: str) -> requests.Session:
    """A browser-like session logged in to the admin through the login form."""
    session = requests.Session()
    login_url = f"{base_url}/admin/login/"
    session.get(login_url, timeout=10)
    response = session.post(
        login_url,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        headers={"Referer": login_url},
        timeout=10,
    )
    assert response.status_code == 200 and "sessionid" in session.cookies, (
        response.text[:500]
    )
    return session
