"""Item-item models stored as sparse top-k neighbour matrices (row = source item).

score(user, j) = sum_h history[h] * N[h, j]. EASE (closed form) is used for small
catalogs; above `ease_max_items` a shrunk cosine neighbour model is used, because
EASE needs O(n_items^2) memory and O(n_items^3) time.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp


def gram(x: sp.csr_matrix) -> np.ndarray:
    """Dense item-item Gram matrix X^T X (float64)."""
    g = (x.T @ x).toarray()
    return np.asarray(g, dtype=np.float64)


def ease_from_gram(g: np.ndarray, lam: float) -> np.ndarray:
    """EASE weights B (zero diagonal) for regularisation `lam`."""
    n = g.shape[0]
    a = g.copy()
    a[np.diag_indices(n)] += lam
    try:
        c, lower = scipy.linalg.cho_factor(a, overwrite_a=True, check_finite=False)
        p = scipy.linalg.cho_solve(
            (c, lower), np.eye(n), overwrite_b=True, check_finite=False
        )
    except np.linalg.LinAlgError:
        p = np.linalg.inv(g + lam * np.eye(n))
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices(n)] = 0.0
    return b


def prune_dense_top_k(b: np.ndarray, k: int, *, chunk: int = 2048) -> sp.csr_matrix:
    """Keep the k largest positive entries per row of a dense matrix."""
    n_rows, n_cols = b.shape
    k = max(1, min(k, n_cols))
    rows, cols, vals = [], [], []
    for start in range(0, n_rows, chunk):
        block = np.asarray(b[start : start + chunk], dtype=np.float32)
        idx = np.argpartition(-block, k - 1, axis=1)[:, :k]
        v = np.take_along_axis(block, idx, axis=1)
        keep = v > 0
        r = np.repeat(np.arange(start, start + block.shape[0]), k).reshape(-1, k)
        rows.append(r[keep])
        cols.append(idx[keep])
        vals.append(v[keep])
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_cols),
        dtype=np.float32,
    )
    m.sort_indices()
    return m


def cosine_neighbors(
    x: sp.csr_matrix, *, k: int, shrink: float = 10.0, max_block: int = 20_000_000
) -> sp.csr_matrix:
    """Top-k shrunk cosine neighbours per item from a user x item matrix."""
    x = x.tocsr().astype(np.float32)
    xt = x.T.tocsr()
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
    chunk = max(1, min(n_items, max_block // max(n_items, 1)))
    k = max(1, min(k, n_items - 1)) if n_items > 1 else 1
    rows, cols, vals = [], [], []
    for start in range(0, n_items, chunk):
        stop = min(start + chunk, n_items)
        co = (xt[start:stop] @ x).toarray().astype(np.float32)
        denom = norms[start:stop, None] * norms[None, :] + shrink
        sim = co / denom
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        v = np.take_along_axis(sim, idx, axis=1)
        keep = v > 0
        r = np.repeat(np.arange(start, stop), k).reshape(-1, k)
        rows.append(r[keep])
        cols.append(idx[keep])
        vals.append(v[keep])
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    m.sort_indices()
    return m


def ease_lambda_grid(g_diag_mean: float, relative: tuple[float, ...]) -> list[float]:
    """Absolute lambdas from multiples of the mean item popularity (diag of G)."""
    base = max(float(g_diag_mean), 1e-6)
    return [float(r * base) for r in relative]
