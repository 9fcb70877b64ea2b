"""Score maths shared by training-time validation and serving (one definition).

Blend: alpha * z(LightFM) + (1 - alpha) * z(item-item), where z standardises a
user's scores over the WHOLE trained catalog. Both statistics are exact and cheap
without scoring every item: the LightFM mean/variance come from the mean and
covariance of the augmented item vectors [v_j, b_j]; the item-item score vector is
sparse (zero outside the history's neighbours).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

EPS = 1e-9
# alpha = 0 (pure item-item) keeps a sliver of LightFM to order the items that
# have no item-item score at all (otherwise their order would be arbitrary)
ALPHA_FLOOR = 1e-3


def effective_alpha(alpha: float) -> float:
    """The blend weight actually used (see ALPHA_FLOOR)."""
    return float(min(max(alpha, ALPHA_FLOOR), 1.0))


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item indices from most to least popular (stable: ties by index)."""
    return np.argsort(-np.asarray(popularity), kind="stable")


STATS_CHUNK = 65536  # rows per block of the catalog statistics


class AugmentedStats:
    """Running sums of augmented [v_j, b_j] rows, fed block by block."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.total = np.zeros(dim + 1)
        self.outer = np.zeros((dim + 1, dim + 1))

    def add(self, emb: np.ndarray, bias: np.ndarray) -> None:
        """Add a block of rows (float64 sums)."""
        block = np.hstack(
            [
                np.asarray(emb, dtype=np.float64),
                np.asarray(bias, dtype=np.float64)[:, None],
            ]
        )
        self.total += block.sum(axis=0)
        self.outer += block.T @ block
        self.n += block.shape[0]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the rows added so far."""
        mean = self.total / max(self.n, 1)
        cov = self.outer / max(self.n, 1) - np.outer(mean, mean)
        return mean, cov


def augmented_stats(emb: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of [v_j, b_j] over items (float64, chunked)."""
    n, d = emb.shape
    stats = AugmentedStats(d)
    for start in range(0, n, STATS_CHUNK):
        stats.add(emb[start : start + STATS_CHUNK], bias[start : start + STATS_CHUNK])
    return stats.result()


def lightfm_z_params(
    user_vecs: np.ndarray, mean: np.ndarray, cov: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user mean and std of LightFM scores over the catalog."""
    u = np.atleast_2d(np.asarray(user_vecs, dtype=np.float64))
    ua = np.hstack([u, np.ones((u.shape[0], 1))])
    mu = ua @ mean
    var = np.einsum("ij,jk,ik->i", ua, cov, ua)
    return mu, np.sqrt(np.maximum(var, 0.0)) + EPS


def itemitem_z_params(
    scores_sum: np.ndarray, scores_sq_sum: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user mean and std of item-item scores from sums over the catalog."""
    mu = scores_sum / n_items
    var = scores_sq_sum / n_items - mu**2
    return mu, np.sqrt(np.maximum(var, 0.0)) + EPS


def blend_dense(
    lightfm_scores: np.ndarray,
    lf_mu: np.ndarray,
    lf_sd: np.ndarray,
    ii_scores: np.ndarray,
    ii_mu: np.ndarray,
    ii_sd: np.ndarray,
    alpha: float,
) -> np.ndarray:
    """Blend two score matrices (rows = users) with per-row standardisation."""
    z_lf = (lightfm_scores - lf_mu[:, None]) / lf_sd[:, None]
    z_ii = (ii_scores - ii_mu[:, None]) / ii_sd[:, None]
    # a user without item-item signal (std ~ 0) gets z_ii == 0 everywhere
    alpha = effective_alpha(alpha)
    return alpha * z_lf + (1.0 - alpha) * z_ii


def batch_blend_scorer(
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    item_bias: np.ndarray,
    history: sp.csr_matrix,
    neighbors: sp.csr_matrix,
    alpha: float,
):
    """Scorer (user indices -> blended dense scores) for validation."""
    mean, cov = augmented_stats(item_emb, item_bias)
    n_items = item_emb.shape[0]

    def parts(users: np.ndarray):
        lf = user_emb[users] @ item_emb.T + item_bias[None, :]
        lf_mu, lf_sd = lightfm_z_params(user_emb[users], mean, cov)
        ii = np.asarray((history[users] @ neighbors).toarray())
        ii_mu, ii_sd = itemitem_z_params(ii.sum(axis=1), (ii**2).sum(axis=1), n_items)
        return lf, lf_mu, lf_sd, ii, ii_mu, ii_sd

    def scorer(users: np.ndarray) -> np.ndarray:
        return blend_dense(*parts(users), alpha)

    scorer.parts = parts  # type: ignore[attr-defined]
    return scorer


def foldin_user(
    item_emb: np.ndarray,
    item_idx: np.ndarray,
    weights: np.ndarray,
    gram_all: np.ndarray,
    n_items: int,
    reg: float,
) -> np.ndarray:
    """Ridge fold-in of a user vector from history item embeddings.

    Minimises sum_h c_h (u.v_h - 1)^2 + beta * mean_j (u.v_j)^2 + reg |u|^2; the
    all-items term (iALS-style implicit negatives, via the precomputed Gram matrix)
    stops the solution from simply pointing at the popular direction.
    """
    v = np.asarray(item_emb[item_idx], dtype=np.float64)
    c = np.asarray(weights, dtype=np.float64)
    d = v.shape[1]
    a = (v * c[:, None]).T @ v + gram_all * (c.sum() / max(n_items, 1))
    a[np.diag_indices(d)] += reg
    return np.linalg.solve(a, v.T @ c).astype(np.float32)
