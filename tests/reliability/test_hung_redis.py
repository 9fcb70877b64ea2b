"""A Redis that hangs (accepts, never answers): one timeout per process, not per call.

A stopped Redis refuses connections at once; a hung one (or a network partition)
makes each call wait for the socket timeout. recsite.cache's circuit breaker turns
that into one slow request every few seconds per process instead of every request.
"""

import time

import pytest

from recsite.cache import circuit_reset
from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
from tests.reliability.servers import BlackHole

# Socket timeouts are 1 s: an unprotected request paid 1 to 3 of them.
FAST = 0.5


@pytest.fixture
def hung_redis(settings):
    hole = BlackHole()
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": hole.url,
            "OPTIONS": {
                **settings.CACHES["default"].get("OPTIONS", {}),
                "CIRCUIT_BREAKER_SECONDS": 30,
            },
        }
    }
    circuit_reset()
    yield hole
    hole.close()
    circuit_reset()


def _seconds(call) -> float:
    started = time.monotonic()
    response = call()
    assert response.status_code == 200, response.content[:300]
    return time.monotonic() - started


@pytest.mark.django_db
def test_a_hung_redis_costs_one_timeout_then_requests_are_fast(hung_redis, api_client):
    user = EndUserFactory(external_id="hung-user")
    for n in range(3):
        InteractionFactory(user=user, item=ItemFactory(external_id=f"hung-{n}"))
    first = _seconds(lambda: api_client.get("/api/v1/items/"))
    assert first >= 0.9  # it did wait for the hung server once
    urls = [
        "/api/v1/items/",
        "/api/v1/recommendations/popular/",
        "/api/v1/users/hung-user/recommendations/",
        "/api/v1/items/hung-0/similar/",
        "/api/v1/health/",
    ]
    timings = {url: _seconds(lambda url=url: api_client.get(url)) for url in urls}
    assert max(timings.values()) < FAST, timings
    health = api_client.get("/api/v1/health/").json()
    assert health["status"] == "degraded" and health["redis"]["status"] == "down"
