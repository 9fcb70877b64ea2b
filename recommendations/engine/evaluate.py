"""Ranking metrics for any scorer (user indices -> dense score matrix)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

Scorer = Callable[[np.ndarray], np.ndarray]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def evaluate(
    scorer: Scorer,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    *,
    k: int = 10,
    users: np.ndarray | None = None,
    item_subset: np.ndarray | None = None,
    chunk_size: int = 256,
    auc_max_users: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Precision/recall/NDCG@k, AUC and catalog coverage of a scorer.

    Items seen in `train` are excluded from the ranking; `item_subset` restricts the
    candidates (and the relevant test items) to a set of item columns (cold items).
    """
    train = train.tocsr()
    test = test.tocsr()
    n_items = train.shape[1]
    allowed = None
    if item_subset is not None:
        allowed = np.zeros(n_items, dtype=bool)
        allowed[np.asarray(item_subset, dtype=np.int64)] = True
        test = test[:, np.flatnonzero(allowed)]
        test = _expand_columns(test, np.flatnonzero(allowed), n_items)
    if users is None:
        users = np.flatnonzero(np.diff(test.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    users = users[np.diff(test.indptr)[users] > 0]
    if users.size == 0:
        return _empty(k)
    rng = np.random.default_rng(seed)
    auc_users = set(
        rng.choice(users, size=min(auc_max_users, users.size), replace=False).tolist()
    )
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    prec, rec, ndcg, aucs = [], [], [], []
    recommended = np.zeros(n_items, dtype=bool)
    for start in range(0, users.size, chunk_size):
        batch = users[start : start + chunk_size]
        scores = np.array(scorer(batch), dtype=np.float64, copy=True)
        scores[~np.isfinite(scores)] = -1e30
        seen = train[batch]
        seen_rows = np.repeat(np.arange(batch.size), np.diff(seen.indptr))
        scores[seen_rows, seen.indices] = -np.inf
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        top = top_k(scores, k)
        valid_top = np.isfinite(np.take_along_axis(scores, top, axis=1))
        recommended[top[valid_top]] = True
        truth = test[batch]
        rel = np.zeros((batch.size, n_items), dtype=bool)
        t_rows = np.repeat(np.arange(batch.size), np.diff(truth.indptr))
        rel[t_rows, truth.indices] = True
        hits = np.take_along_axis(rel, top, axis=1) & valid_top
        n_rel = np.diff(truth.indptr).astype(np.float64)
        prec.append(hits.sum(axis=1) / k)
        rec.append(hits.sum(axis=1) / n_rel)
        dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
        ideal = np.cumsum(discounts)[np.minimum(n_rel, k).astype(int) - 1]
        ndcg.append(dcg / ideal)
        auc_mask = np.array([u in auc_users for u in batch])
        if auc_mask.any():
            aucs.append(_auc(scores[auc_mask], rel[auc_mask]))
    n_candidates = int(allowed.sum()) if allowed is not None else n_items
    return {
        f"precision_at_{k}": float(np.concatenate(prec).mean()),
        f"recall_at_{k}": float(np.concatenate(rec).mean()),
        f"ndcg_at_{k}": float(np.concatenate(ndcg).mean()),
        "auc": float(np.concatenate(aucs).mean()) if aucs else float("nan"),
        "coverage": float(recommended.sum() / max(n_candidates, 1)),
        "n_users": int(users.size),
    }


def _auc(scores: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row ROC AUC of relevant vs other finite-scored items."""
    candidate = np.isfinite(scores)
    ranked = np.where(candidate, scores, -np.inf)
    order = np.argsort(ranked, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(scores.shape[1])[None, :]
    n_excluded = (~candidate).sum(axis=1)
    pos = rel & candidate
    n_pos = pos.sum(axis=1)
    n_neg = candidate.sum(axis=1) - n_pos
    rank_sum = np.where(pos, ranks, 0).sum(axis=1) - n_pos * n_excluded
    ok = (n_pos > 0) & (n_neg > 0)
    auc = (rank_sum - n_pos * (n_pos - 1) / 2.0) / np.maximum(n_pos * n_neg, 1)
    return auc[ok]


def _expand_columns(m: sp.csr_matrix, cols: np.ndarray, n: int) -> sp.csr_matrix:
    coo = m.tocoo()
    return sp.csr_matrix((coo.data, (coo.row, cols[coo.col])), shape=(m.shape[0], n))


def _empty(k: int) -> dict[str, float]:
    nan = float("nan")
    return {
        f"precision_at_{k}": nan,
        f"recall_at_{k}": nan,
        f"ndcg_at_{k}": nan,
        "auc": nan,
        "coverage": nan,
        "n_users": 0,
    }


def holdout_pairs(
    user_index: np.ndarray,
    item_index: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    fraction: float = 0.25,
    seed: int = 0,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binary per-user random holdout of distinct (user, item) pairs."""
    from .dataset import split_per_user

    m = sp.csr_matrix(
        (np.ones(len(user_index), np.float32), (user_index, item_index)),
        shape=(n_users, n_items),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return split_per_user(m, fraction=fraction, seed=seed)


def evaluate_top_lists(
    recommend: Callable[[int], np.ndarray],
    test: sp.csr_matrix,
    *,
    k: int = 10,
    users: np.ndarray | None = None,
) -> dict[str, float]:
    """Precision/recall/NDCG@k and coverage of per-user top-k index lists.

    `recommend(user_index)` returns ranked item indices (already excluding the
    user's training items); this evaluates a serving object exactly as it serves.
    """
    test = test.tocsr()
    if users is None:
        users = np.flatnonzero(np.diff(test.indptr) > 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    prec, rec, ndcg = [], [], []
    recommended = np.zeros(test.shape[1], dtype=bool)
    for u in users:
        top = np.asarray(recommend(int(u)), dtype=np.int64)[:k]
        truth = test.indices[test.indptr[u] : test.indptr[u + 1]]
        recommended[top] = True
        hits = np.isin(top, truth)
        prec.append(hits.sum() / k)
        rec.append(hits.sum() / truth.size)
        ideal = discounts[: min(truth.size, k)].sum()
        ndcg.append((hits * discounts[: hits.size]).sum() / ideal)
    return {
        f"precision_at_{k}": float(np.mean(prec)),
        f"recall_at_{k}": float(np.mean(rec)),
        f"ndcg_at_{k}": float(np.mean(ndcg)),
        "coverage": float(recommended.mean()),
        "n_users": len(users),
    }
