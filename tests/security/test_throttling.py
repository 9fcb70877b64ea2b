"""The sliding-window rate limiter: budget per key, windows that slide, O(1) state."""

import uuid

import pytest
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from users import throttling
from users.services import api_key_create

TEST_URLS = "tests.security.urls"
ECHO = "/api/v1/test-echo/"


@pytest.fixture
def limited(settings):
    """A write key limited to 4 requests per minute, with a private cache prefix."""
    settings.ROOT_URLCONF = TEST_URLS
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"t-{uuid.uuid4().hex}"}
    }
    settings.REST_FRAMEWORK = {
        **api_settings.user_settings,
        "DEFAULT_THROTTLE_RATES": {
            "write": "4/min",
            "read_only": "4/min",
            "public": "4/min",
            "staff": "4/min",
        },
    }
    _, raw_key = api_key_create(name="limited", kind="write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.mark.django_db
def test_window_slides_instead_of_resetting(limited, monkeypatch):
    clock = _Clock(60_000 * 60 + 50.0)  # 50 s into a one-minute window
    monkeypatch.setattr(throttling.time, "time", clock.time)
    assert [limited.get(ECHO).status_code for _ in range(4)] == [200] * 4
    assert limited.get(ECHO).status_code == 429
    # 15 s into the next window, 75% of the previous window's 4 requests still
    # count (3): one more request fits, the second does not.
    clock.now += 25.0
    assert limited.get(ECHO).status_code == 200
    refused = limited.get(ECHO)
    assert refused.status_code == 429
    # Retry-After: when the previous window's share has shrunk enough for one more.
    assert 1 <= int(refused["Retry-After"]) <= 60
    clock.now += int(refused["Retry-After"])
    assert limited.get(ECHO).status_code == 200
    # A whole window later the budget is back in full.
    clock.now += 120.0
    assert [limited.get(ECHO).status_code for _ in range(4)] == [200] * 4


@pytest.mark.django_db
def test_refused_requests_do_not_use_up_the_budget(limited, monkeypatch):
    clock = _Clock(60_000 * 60 + 1.0)
    monkeypatch.setattr(throttling.time, "time", clock.time)
    assert [limited.get(ECHO).status_code for _ in range(4)] == [200] * 4
    assert [limited.get(ECHO).status_code for _ in range(20)] == [429] * 20
    clock.now += 60.0  # next window: the previous one had 4 (not 24) requests
    clock.now += 45.0  # ... of which 25% still count: 1, so 3 more fit
    assert [limited.get(ECHO).status_code for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.django_db
def test_state_per_key_is_two_small_counters(limited):
    for _ in range(3):
        limited.get(ECHO)
    client = cache._cache.get_client(write=True)
    keys = client.keys(f"{cache.key_prefix}*throttle*")
    assert 1 <= len(keys) <= 2
    assert all(int(client.get(k)) <= 3 for k in keys)
    assert all(0 < client.ttl(k) <= 120 for k in keys)


def _limit(settings, rate: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            kind: rate for kind in ("write", "read_only", "public", "staff")
        },
    }


class _RoundTrips:
    """Counts the throttle's Redis round trips."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        backend = type(cache._connections[cache._alias])
        real = backend.window_counts

        def counted(this, *args, **kwargs):
            self.calls += 1
            return real(this, *args, **kwargs)

        monkeypatch.setattr(backend, "window_counts", counted)


def _redis_count() -> int:
    client = cache._cache.get_client(write=True)
    return sum(int(client.get(k)) for k in client.keys(f"{cache.key_prefix}*throttle*"))


@pytest.mark.django_db
def test_far_below_the_limit_requests_reach_redis_in_batches(
    limited, settings, monkeypatch
):
    _limit(settings, "6000/min")  # batches of 60
    assert throttling.batch_size(6000) == 60
    clock = _Clock(60_000 * 60 + 1.0)
    monkeypatch.setattr(throttling.time, "time", clock.time)
    trips = _RoundTrips(monkeypatch)
    assert [limited.get(ECHO).status_code for _ in range(150)] == [200] * 150
    assert trips.calls == 3  # requests 1, 61 and 121
    assert _redis_count() == 121  # the last 29 are still counted in this process
    # At most SYNC_S later the next request sends them: nothing is lost.
    clock.now += throttling.SYNC_S
    assert limited.get(ECHO).status_code == 200
    assert trips.calls == 4 and _redis_count() == 151


@pytest.mark.django_db
def test_near_the_limit_every_request_is_counted_and_refusal_is_exact(
    limited, settings, monkeypatch
):
    _limit(settings, "1000/min")  # batches of 10 below 500
    clock = _Clock(60_000 * 60 + 1.0)
    monkeypatch.setattr(throttling.time, "time", clock.time)
    trips = _RoundTrips(monkeypatch)
    statuses = [limited.get(ECHO).status_code for _ in range(1003)]
    assert statuses == [200] * 1000 + [429] * 3
    assert _redis_count() == 1000
    # Batched below half the limit (about 500 / 10 round trips), one each above.
    assert 500 + 3 < trips.calls < 500 + 3 + 60


@pytest.mark.django_db
def test_processes_that_batch_still_share_one_budget(limited, settings, monkeypatch):
    """Two processes (two tallies) alternating on one key: 1,000 allowed in all."""
    _limit(settings, "1000/min")
    clock = _Clock(60_000 * 60 + 1.0)
    monkeypatch.setattr(throttling.time, "time", clock.time)
    tallies = [{}, {}]
    allowed = 0
    for n in range(1100):
        monkeypatch.setattr(throttling, "_tallies", tallies[n % 2])
        allowed += limited.get(ECHO).status_code == 200
    assert allowed == 1000
    assert _redis_count() == 1000


def test_small_limits_never_batch():
    assert throttling.batch_size(4) == 1
    assert throttling.batch_size(199) == 1
    assert throttling.batch_size(1_000_000) == throttling.BATCH_MAX


@pytest.mark.django_db
def test_a_process_with_a_stale_view_overshoots_by_one_batch_at_most(
    limited, settings, monkeypatch
):
    """Process A last looked at the key below half its limit; process B then took it
    to the limit. A lets through at most what is left of its batch, then looks."""
    _limit(settings, "1000/min")
    batch = throttling.batch_size(1000)
    clock = _Clock(60_000 * 60 + 1.0)
    monkeypatch.setattr(throttling.time, "time", clock.time)
    a, b = {}, {}

    def run(tallies: dict, n: int) -> list[int]:
        monkeypatch.setattr(throttling, "_tallies", tallies)
        return [limited.get(ECHO).status_code for _ in range(n)]

    allowed = run(a, 445).count(200)
    statuses = run(b, 600)
    allowed += statuses.count(200)
    assert statuses[-1] == 429
    late = run(a, 2 * batch)
    allowed += late.count(200)
    assert late[-1] == 429
    assert 1000 <= allowed <= 1000 + batch - 1
    assert _redis_count() == allowed
