"""User x item confidence matrix from raw interaction rows (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .types import InteractionTypeSpec, TrainingData

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class IdMap:
    """Bidirectional pk <-> index mapping (vectorised lookups).

    Holds no copy of its arrays when it can: pks already in increasing order are
    their own sorted view, and saved models store the argsort and the sorted pks
    (`from_sorted`), so a memory-mapped model maps a million users without a
    private copy per process.
    """

    pks: np.ndarray  # int64 [n], index order
    _order: np.ndarray | None  # argsort of pks; None when pks are increasing
    _sorted: np.ndarray  # pks[_order]

    @classmethod
    def from_pks(cls, pks: np.ndarray) -> IdMap:
        """Build from the pks in index order (must be unique)."""
        pks = np.asarray(pks, dtype=np.int64)
        if pks.size < 2 or bool(np.all(pks[1:] > pks[:-1])):
            return cls(pks=pks, _order=None, _sorted=pks)
        order = np.argsort(pks, kind="stable")
        sorted_pks = pks[order]
        if np.any(sorted_pks[1:] == sorted_pks[:-1]):
            raise ValueError("duplicate pks")
        return cls(pks=pks, _order=order, _sorted=sorted_pks)

    @classmethod
    def from_sorted(
        cls, pks: np.ndarray, order: np.ndarray, sorted_pks: np.ndarray
    ) -> IdMap:
        """Build from pks, their argsort and pks[argsort] (as saved with a model)."""
        pks = np.asarray(pks, dtype=np.int64)
        if not (order.shape == sorted_pks.shape == pks.shape):
            raise ValueError("order does not match pks")
        return cls(pks=pks, _order=order, _sorted=np.asarray(sorted_pks, np.int64))

    def sort_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(argsort of pks, sorted pks): what `from_sorted` needs."""
        if self._order is None:
            return np.arange(len(self), dtype=np.int64), self.pks
        return self._order, self._sorted

    def __len__(self) -> int:
        return int(self.pks.shape[0])

    def indices(self, pks: np.ndarray) -> np.ndarray:
        """Map pks to indices; unknown pks map to -1."""
        pks = np.asarray(pks, dtype=np.int64).ravel()
        if self._sorted.size == 0:
            return np.full(pks.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted, pks)
        pos = np.minimum(pos, self._sorted.size - 1)
        found = self._sorted[pos] == pks
        index = pos if self._order is None else self._order[pos]
        return np.where(found, index, -1).astype(np.int64)

    def index_of(self, pk: int) -> int:
        """Index of one pk, or -1."""
        return int(self.indices(np.array([pk]))[0])


def type_weight_lookup(
    types: tuple[InteractionTypeSpec, ...], type_ids: np.ndarray
) -> np.ndarray:
    """Signed weight per interaction row (negative types subtract; unknown -> 0)."""
    type_ids = np.asarray(type_ids, dtype=np.int64)
    if not types:
        return np.ones(type_ids.shape, dtype=np.float64)
    spec_ids = np.array([t.id for t in types], dtype=np.int64)
    signed = np.array(
        [abs(t.weight) if t.is_positive else -abs(t.weight) for t in types],
        dtype=np.float64,
    )
    order = np.argsort(spec_ids)
    spec_ids, signed = spec_ids[order], signed[order]
    pos = np.minimum(np.searchsorted(spec_ids, type_ids), spec_ids.size - 1)
    return np.where(spec_ids[pos] == type_ids, signed[pos], 0.0)


def confidence_matrix(
    user_index: np.ndarray,
    item_index: np.ndarray,
    row_weights: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    timestamps: np.ndarray | None = None,
    half_life_days: float | None = None,
    reference_time: float | None = None,
) -> sp.csr_matrix:
    """Sum signed row weights per (user, item), compress with log1p, drop <= 0.

    Repeated interactions accumulate sub-linearly (log1p of the sum) so a user who
    viewed an item fifty times does not drown the rest of their history.
    """
    user_index = np.asarray(user_index, dtype=np.int64)
    item_index = np.asarray(item_index, dtype=np.int64)
    w = np.asarray(row_weights, dtype=np.float64)
    keep = (user_index >= 0) & (item_index >= 0) & (w != 0)
    if half_life_days and timestamps is not None:
        ts = np.asarray(timestamps, dtype=np.float64)
        ref = float(np.nanmax(ts[keep])) if reference_time is None else reference_time
        age_days = np.maximum(ref - ts, 0.0) / SECONDS_PER_DAY
        w = w * np.exp2(-np.nan_to_num(age_days, nan=0.0) / float(half_life_days))
    if not np.all(keep):
        user_index, item_index, w = user_index[keep], item_index[keep], w[keep]
    m = sp.coo_matrix((w, (user_index, item_index)), shape=(n_users, n_items))
    m = m.tocsr()  # sums duplicates
    m.sum_duplicates()
    data = m.data
    positive = data > 0
    m.data = np.where(positive, np.log1p(np.maximum(data, 0.0)), 0.0).astype(np.float32)
    m.eliminate_zeros()
    m.sort_indices()
    return m


@dataclass(frozen=True)
class InteractionMatrix:
    """Confidence matrix with its id maps."""

    matrix: sp.csr_matrix  # float32 [n_users, n_items]
    users: IdMap
    items: IdMap
    n_rows_used: int
    n_rows_dropped: int


def build_matrix(
    data: TrainingData, *, half_life_days: float | None = None
) -> InteractionMatrix:
    """Build the confidence matrix over ALL users and items of the metadata."""
    users = IdMap.from_pks(data.users.ids)
    items = IdMap.from_pks(data.items.ids)
    u = users.indices(data.user_ids)
    i = items.indices(data.item_ids)
    w = type_weight_lookup(data.types, data.type_ids)
    valid = (u >= 0) & (i >= 0)
    m = confidence_matrix(
        u,
        i,
        w,
        len(users),
        len(items),
        timestamps=data.timestamps,
        half_life_days=half_life_days,
    )
    n_used = int(valid.sum())
    return InteractionMatrix(
        matrix=m,
        users=users,
        items=items,
        n_rows_used=n_used,
        n_rows_dropped=int(valid.size - n_used),
    )


def split_per_user(
    matrix: sp.csr_matrix,
    *,
    fraction: float,
    seed: int,
    min_train: int = 1,
    users: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Random per-user holdout: about `fraction` of each user's items go to test.

    Users with fewer than `min_train + 1` items keep everything in train; when
    `users` is given, only those users lose items (the others keep everything).
    """
    m = matrix.tocsr()
    rng = np.random.default_rng(seed)
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    # rank a random key within each row: lexsort by (key, row)
    key = rng.random(m.nnz)
    order = np.lexsort((key, rows))
    rank = np.empty(m.nnz, dtype=np.int64)
    starts = np.repeat(m.indptr[:-1], counts)
    rank[order] = np.arange(m.nnz) - starts
    n_test = np.floor(counts * fraction + rng.random(counts.size)).astype(np.int64)
    n_test = np.minimum(n_test, np.maximum(counts - min_train, 0))
    if users is not None:
        chosen = np.zeros(counts.size, dtype=bool)
        chosen[np.asarray(users, dtype=np.int64)] = True
        n_test[~chosen] = 0
    is_test = rank < n_test[rows]
    coo = m.tocoo()
    train = sp.csr_matrix(
        (coo.data[~is_test], (coo.row[~is_test], coo.col[~is_test])), shape=m.shape
    )
    test = sp.csr_matrix(
        (coo.data[is_test], (coo.row[is_test], coo.col[is_test])), shape=m.shape
    )
    return train, test


def row_normalize_l1(m: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row to sum 1 (empty rows stay empty)."""
    m = m.tocsr().astype(np.float32)
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.diags(1.0 / sums).dot(m).tocsr().astype(np.float32)
