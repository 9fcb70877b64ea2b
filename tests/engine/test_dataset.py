"""Confidence matrix, id maps and splits."""

import numpy as np
import pytest

from recommendations.engine.dataset import (
    IdMap,
    build_matrix,
    confidence_matrix,
    split_per_user,
    type_weight_lookup,
)
from recommendations.engine.synthetic import DEFAULT_INTERACTION_TYPES
from recommendations.engine.types import InteractionTypeSpec

TYPES = (
    InteractionTypeSpec(1, "view", 1.0, True),
    InteractionTypeSpec(2, "purchase", 5.0, True),
    InteractionTypeSpec(3, "dislike", 3.0, False),
)


def test_weights_accumulate_sublinearly_and_negatives_subtract():
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([0, 0, 1, 0, 0, 1])
    types = np.array([1, 1, 2, 1, 3, 1])
    w = type_weight_lookup(TYPES, types)
    m = confidence_matrix(users, items, w, 3, 2).toarray()
    assert m[0, 0] == np.float32(np.log1p(2.0))  # two views
    assert m[0, 1] == np.float32(np.log1p(5.0))  # one purchase
    assert m[1, 0] == 0.0  # view (1) - dislike (3) < 0 -> dropped
    assert m[2, 1] == np.float32(np.log1p(1.0))


def test_time_decay_halves_weight_per_half_life():
    ts = np.array([0.0, 10 * 86_400.0])
    m = confidence_matrix(
        np.array([0, 1]),
        np.array([0, 0]),
        np.ones(2),
        2,
        1,
        timestamps=ts,
        half_life_days=10,
    ).toarray()
    assert np.isclose(m[0, 0], np.log1p(0.5)) and np.isclose(m[1, 0], np.log1p(1.0))


def test_idmap_maps_unknown_to_minus_one():
    ids = IdMap.from_pks(np.array([40, 10, 30]))
    assert ids.indices(np.array([10, 30, 40, 99])).tolist() == [1, 2, 0, -1]


@pytest.mark.parametrize("pks", [[40, 10, 30], [10, 30, 40], [7], []])
def test_id_map_rebuilt_from_its_saved_order_gives_the_same_indices(pks):
    pks = np.array(pks, dtype=np.int64)
    built = IdMap.from_pks(pks)
    restored = IdMap.from_sorted(pks, *built.sort_order())
    probe = np.array([10, 30, 40, 7, 99, -1])
    expected = [pks.tolist().index(p) if p in pks else -1 for p in probe]
    assert built.indices(probe).tolist() == expected
    assert restored.indices(probe).tolist() == expected


def test_id_map_of_increasing_pks_does_not_copy_them():
    pks = np.arange(1, 3000, 3, dtype=np.int64)
    ids = IdMap.from_pks(pks)
    order, sorted_pks = ids.sort_order()
    assert np.shares_memory(sorted_pks, pks)
    assert ids.indices(np.array([4, 5, 2998])).tolist() == [1, -1, 999]
    assert order.tolist() == list(range(pks.size))


@pytest.mark.parametrize("pks", [[3, 1, 3], [1, 1, 2]])
def test_id_map_refuses_duplicate_pks(pks):
    with pytest.raises(ValueError, match="duplicate"):
        IdMap.from_pks(np.array(pks))


def test_build_matrix_drops_rows_of_unknown_users_and_items(log):
    from recommendations.engine.synthetic import to_training_data

    data = to_training_data(log)
    im = build_matrix(data)
    assert im.matrix.shape == (len(log.users), len(log.items))
    assert im.n_rows_dropped == 0 and im.matrix.nnz > 0
    assert np.all(im.matrix.data > 0)


def test_half_life_halves_older_rows():
    # speed of this path is measured by benchmarks, not here
    day = 86_400.0
    m = confidence_matrix(
        np.array([0, 0, 1]),
        np.array([0, 1, 1]),
        type_weight_lookup(DEFAULT_INTERACTION_TYPES, np.array([1, 1, 1])),
        2,
        2,
        timestamps=np.array([100 * day, 70 * day, 40 * day]),
        half_life_days=30,
    )
    assert np.allclose(m.toarray(), np.log1p([[1.0, 0.5], [0.0, 0.25]]))


def test_split_restricted_to_some_users_leaves_the_others_whole():
    rng = np.random.default_rng(2)
    m = confidence_matrix(
        rng.integers(0, 100, 5_000),
        rng.integers(0, 300, 5_000),
        np.ones(5_000),
        100,
        300,
    )
    chosen = np.array([3, 10, 50])
    train, test = split_per_user(m, fraction=0.3, seed=0, users=chosen)
    assert set(np.flatnonzero(np.diff(test.indptr))) == set(chosen.tolist())
    assert train.nnz + test.nnz == m.nnz
    others = np.setdiff1d(np.arange(100), chosen)
    assert (train[others] != m[others]).nnz == 0


def test_split_holds_out_a_fraction_per_user_and_keeps_train():
    rng = np.random.default_rng(1)
    m = confidence_matrix(
        rng.integers(0, 200, 20_000),
        rng.integers(0, 500, 20_000),
        np.ones(20_000),
        200,
        500,
    )
    train, test = split_per_user(m, fraction=0.25, seed=0)
    assert train.nnz + test.nnz == m.nnz
    assert train.multiply(test).nnz == 0
    assert abs(test.nnz / m.nnz - 0.25) < 0.02
    assert np.all(np.diff(train.indptr)[np.diff(m.indptr) > 0] >= 1)
