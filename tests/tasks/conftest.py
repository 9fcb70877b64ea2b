"""A real Celery worker (in-process thread) on a dedicated Redis database.

The worker consumes the `default` and `training` queues of the project's Celery app
from Redis database `TEST_CELERY_BROKER_DB` (default 14) of the REDIS_URL server, so
messages sent by the rest of the suite (database 0) never reach it. Tests that use
it need committed rows: `@pytest.mark.django_db(transaction=True)`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.db import connections

from recsite.celery import app as celery_app

TEST_BROKER_DB = int(os.environ.get("TEST_CELERY_BROKER_DB", "14"))


def broker_url_for_tests() -> str:
    """The broker URL of these tests: REDIS_URL's server, database TEST_BROKER_DB."""
    explicit = os.environ.get("TEST_CELERY_BROKER_URL")
    if explicit:
        return explicit
    parts = urlsplit(settings.CELERY_BROKER_URL)
    if parts.scheme == "redis+socket":
        # kombu's Unix-socket transport (test.sh's embedded Redis): the database is
        # the `virtual_host` query parameter, the path is the socket.
        # (urlunsplit would drop the empty host: `redis+socket:/path`.)
        return f"redis+socket://{parts.path}?virtual_host={TEST_BROKER_DB}"
    if parts.scheme not in ("redis", "rediss"):
        pytest.skip(f"set TEST_CELERY_BROKER_URL for a {parts.scheme}:// broker")
    return urlunsplit(parts._replace(path=f"/{TEST_BROKER_DB}"))


def redis_client_for(broker_url: str) -> redis.Redis:
    """A redis-py client on a kombu broker URL's database (redis-py has no
    `redis+socket`: it spells a Unix socket `unix://<path>?db=N`)."""
    parts = urlsplit(broker_url)
    if parts.scheme == "redis+socket":
        query = dict(parse_qsl(parts.query))
        db = query.get("virtual_host", "0")
        return redis.Redis.from_url(f"unix://{parts.path}?db={db}")
    return redis.Redis.from_url(broker_url)


def _reset_connections(app) -> None:
    """Forget pooled broker connections so a changed broker_url takes effect."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture(scope="session")
def celery_test_app():
    """The project's Celery app pointed at the test broker database (flushed)."""
    url = broker_url_for_tests()
    redis_client_for(url).flushdb()
    # Celery reads broker_url from $CELERY_BROKER_URL before its configuration (test.sh
    # exports it for the embedded Redis); the read/write URLs set here take precedence.
    names = ("broker_url", "broker_read_url", "broker_write_url")
    previous = {name: celery_app.conf.get(name) for name in names}
    celery_app.conf.update(dict.fromkeys(names, url))
    _reset_connections(celery_app)
    yield celery_app
    celery_app.conf.update(previous)
    _reset_connections(celery_app)
    redis_client_for(url).flushdb()


def _close_worker_db_connections(**kwargs) -> None:
    # The solo pool runs tasks in the worker thread: close its connections after
    # each task, or the test database cannot be flushed or dropped.
    connections.close_all()


@contextmanager
def running_worker(app):
    """A real worker thread consuming `default` and `training` (solo pool)."""
    task_postrun.connect(_close_worker_db_connections, weak=False)
    try:
        with start_worker(
            app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=["default", "training"],
            shutdown_timeout=60,
            loglevel="WARNING",
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(_close_worker_db_connections)


@pytest.fixture
def celery_worker(celery_test_app, transactional_db):
    """A real worker for the test (needs committed rows: transactional_db)."""
    with running_worker(celery_test_app) as worker:
        yield worker


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 60, what: str = ""
) -> object:
    """Poll `predicate` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate}"
            )
        time.sleep(0.1)


# Training parameters that keep a run on the small data set around a second.
FAST_TRAINING = {"search": False, "max_epochs": 5, "components": 8, "num_threads": 1}


@pytest.fixture
def small_dataset(transactional_db):
    """60 users, 50 items, 1,500 interactions (synthetic, with planted tastes)."""
    from recommendations.engine.synthetic import generate
    from recommendations.services.demo import demo_data_load

    return demo_data_load(
        log=generate(n_users=60, n_items=50, n_interactions=1500, seed=1)
    )


@pytest.fixture
def artifacts_dir(settings, tmp_path):
    """A private ARTIFACTS_DIR for the test."""
    directory = tmp_path / "artifacts"
    directory.mkdir()
    settings.RECSITE = {**settings.RECSITE, "ARTIFACTS_DIR": str(directory)}
    return directory
