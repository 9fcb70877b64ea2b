"""A Celery worker outlives a PostgreSQL restart: work sent during the outage completes.

A real worker process (solo pool) reaches the test database through the cuttable
proxy and a private Redis broker. An import is sent while the database is away: the
task meets the outage, retries by itself, and the job finishes once the database is
back, with the same worker process, never restarted.
"""

import subprocess
import sys
import time

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from items.models import Item
from recommendations.models import ImportJob
from tests.reliability.servers import LOOPBACK, ROOT, database_url, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def worker_via_proxy(pg_proxy, redis_of_our_own, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    log_path = tmp_path / "worker.log"
    env = {
        "DJANGO_SETTINGS_MODULE": "recsite.settings.test",
        "DATABASE_URL": database_url(
            connection.settings_dict, host=LOOPBACK, port=pg_proxy.port
        ),
        "DB_CONNECT_TIMEOUT": "2",
        "REDIS_URL": redis_of_our_own.url,
        "CELERY_BROKER_URL": redis_of_our_own.url,
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "OPENBLAS_NUM_THREADS": "1",
    }
    import os

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "recsite",
                "worker",
                "-Q",
                "default",
                "-P",
                "solo",
                "-c",
                "1",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_until(
        lambda: "ready" in log_path.read_text(errors="replace"),
        timeout=60,
        what="the celery worker to be ready",
    )
    yield process, log_path
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _job_status(pk: int) -> str:
    return ImportJob.objects.values_list("status", flat=True).get(pk=pk)


@pytest.mark.django_db(transaction=True)
def test_import_sent_during_a_database_outage_completes_after_it(
    worker_via_proxy, pg_proxy
):
    from recommendations.services.imports import import_job_create

    process, log_path = worker_via_proxy
    # The worker works and holds a database connection before the outage.
    before = import_job_create(
        kind="items", file=ContentFile(b"id,title\nbefore-1,One\n", name="before.csv")
    )
    wait_until(
        lambda: _job_status(before.pk) == "done", timeout=60, what="first import"
    )

    pg_proxy.cut()
    during = import_job_create(  # the row is written directly, not through the proxy
        kind="items",
        file=ContentFile(b"id,title\nduring-1,A\nduring-2,B\n", name="during.csv"),
    )
    # Let the worker pick the task up and meet the outage.
    wait_until(
        lambda: (
            "retry" in log_path.read_text(errors="replace").lower()
            or "OperationalError" in log_path.read_text(errors="replace")
        ),
        timeout=30,
        what="the task to meet the outage",
    )
    time.sleep(1)
    pg_proxy.restore()

    wait_until(
        lambda: _job_status(during.pk) == "done",
        timeout=90,
        interval=0.5,
        what="the import sent during the outage to finish",
    )
    assert set(
        Item.objects.filter(external_id__startswith="during-").values_list(
            "external_id", flat=True
        )
    ) == {"during-1", "during-2"}
    assert process.poll() is None, "the worker died"
