"""A small `benchmarks/load_without_loss.py`: concurrent retries, no loss, no double.

Four clients send 3,000 distinct events through a real gunicorn (two sync workers) on
the test database, 5 % of them again with the same event_id (whole batches sent twice
at once, and single events repeated in later batches). The full-size run (8 clients,
200,000 events) and its throughput are in docs/reliability.md.
"""

import pytest
from django.db import connection

from benchmarks.load_without_loss import TYPES, create_items, run_load, verify
from recommendations.models import Interaction
from tests.factories import InteractionTypeFactory
from tests.reliability.servers import Gunicorn, database_url

EVENTS = 3_000
PREFIX = "lws"


@pytest.fixture
def gunicorn_on_test_db(transactional_db, private_redis, tmp_path):
    settings_dict = connection.settings_dict
    server = Gunicorn(
        {
            "DATABASE_URL": database_url(
                settings_dict,
                host=settings_dict.get("HOST") or "127.0.0.1",
                port=int(settings_dict.get("PORT") or 5432),
            ),
            "REDIS_URL": private_redis.url,
            "CELERY_BROKER_URL": private_redis.url,
        },
        workers=2,
    )
    server.start(tmp_path / "gunicorn.log")
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_concurrent_retried_batches_store_every_event_exactly_once(
    gunicorn_on_test_db, write_key
):
    # Transactional tests flush the types the data migration created.
    for name in TYPES:
        InteractionTypeFactory(name=name)
    base = gunicorn_on_test_db.base_url
    create_items(base, write_key, n_items=300, prefix=PREFIX)
    result = run_load(
        base,
        write_key,
        events=EVENTS,
        clients=4,
        batch=150,
        retry_fraction=0.05,
        seed=7,
        n_users=500,
        n_items=300,
        prefix=PREFIX,
        max_seconds=120,
    )
    stored = list(
        Interaction.objects.filter(event_id__startswith=f"{PREFIX}-").values_list(
            "event_id", flat=True
        )
    )
    assert verify(stored, result, prefix=PREFIX) == [], result.as_dict()
    # The run really exercised retries of both kinds.
    assert result.whole_batch_retries > 0
    assert result.single_event_retries > 0
    assert result.duplicates == result.rows_sent - EVENTS > 0
