"""The per-process cache of item rows: bounded, and it keeps the rows in use."""

from datetime import UTC, datetime

import pytest

from recommendations import serving
from recommendations.selectors.serving import ItemRow

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _row(pk: int) -> ItemRow:
    return ItemRow(pk, f"item-{pk}", f"Item {pk}", True, ("books",), ())


def _put(cache, pks):
    rows = {pk: _row(pk) for pk in pks}
    return cache.put(rows, {pk: (WHEN, True) for pk in pks})


@pytest.fixture
def cache(monkeypatch):
    monkeypatch.setattr(serving, "ITEM_ROW_CACHE_MAX", 10)
    return serving._ItemRowCache()


def test_when_full_the_rows_read_longest_ago_go_and_the_recent_stay(cache):
    _put(cache, range(1, 9))  # 8 rows
    _put(cache, [9, 10, 11])  # 11 > 10: drop to half, keep the newest
    assert len(cache.rows) <= 10
    assert {9, 10, 11} <= set(cache.rows)
    assert 1 not in cache.rows and 2 not in cache.rows


def test_a_row_read_again_moves_to_the_end_and_survives_the_next_eviction(cache):
    _put(cache, range(1, 11))  # full: 1 is the oldest
    _put(cache, [1])  # read again
    _put(cache, [20, 21])  # evicts the oldest half
    assert 1 in cache.rows and {20, 21} <= set(cache.rows)
    assert 2 not in cache.rows


def test_the_cache_never_grows_past_its_bound(cache):
    for start in range(0, 500, 7):
        _put(cache, range(start, start + 7))
        assert len(cache.rows) <= 10
    # and what was just read is always there
    assert set(range(497, 504)) <= set(cache.rows)


def test_rows_come_back_with_the_visibility_of_the_states(cache):
    out = cache.put({5: _row(5)}, {5: (WHEN, False)})
    assert out[5].visible is False and cache.rows[5][2].visible is False
    assert cache.put({6: _row(6)}, {}) == {} and 6 not in cache.rows


def test_a_full_cache_keeps_its_newer_half_instead_of_emptying(cache):
    _put(cache, range(1, 11))
    _put(cache, [11])
    assert {7, 8, 9, 10, 11} <= set(cache.rows)
    assert not {1, 2, 3} & set(cache.rows)
