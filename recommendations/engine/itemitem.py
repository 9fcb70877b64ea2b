"""Item-item models stored as sparse top-k neighbour matrices (row = source item).

score(user, j) = sum_h history[h] * N[h, j]. EASE (closed form) is used for small
catalogs; above `ease_max_items` a shrunk cosine neighbour model is used, because
EASE needs O(n_items^2) memory and O(n_items^3) time.
"""

from __future__ import annotations

import itertools

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
    x: sp.csr_matrix,
    *,
    k: int,
    shrink: float = 10.0,
    block_nnz: int = 20_000_000,
    rows: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Top-k shrunk cosine neighbours per item from a user x item matrix.

    Sparse all the way: co-occurrence counts come from `X^T X` computed in blocks
    of item rows (each block's product holds at most about `block_nnz` entries,
    so memory stays bounded), and only the k largest entries of each row survive.
    Cost grows with sum over users of (items per user)^2, not with n_items^2.
    `rows`: compute only these items' rows (the others stay empty), e.g. the items
    that validation users have seen.
    """
    x = sp.csr_matrix(x, dtype=np.float32)
    xt = x.T.tocsr()
    n_items = x.shape[1]
    k = max(1, min(k, n_items - 1)) if n_items > 1 else 1
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
    # upper bound of each product row's size: the item's users' history lengths
    user_len = np.diff(x.indptr).astype(np.float64)
    row_cost = np.asarray(xt @ user_len).ravel() if xt.nnz else np.zeros(n_items)
    if rows is not None:
        # drop the other rows from the product (they cost nothing and stay empty)
        wanted = np.zeros(n_items, dtype=bool)
        wanted[np.asarray(rows, dtype=np.int64)] = True
        xt = sp.diags(wanted.astype(np.float32)) @ xt
        xt.eliminate_zeros()
        row_cost = np.where(wanted, row_cost, 0.0)
    cum = np.cumsum(row_cost)
    cuts = np.searchsorted(
        cum, np.arange(block_nnz, cum[-1] if cum.size else 0, block_nnz)
    )
    bounds = np.unique(np.concatenate([[0], cuts, [n_items]])).tolist()
    rows, cols, vals = [], [], []
    for start, stop in itertools.pairwise(bounds):
        co = (xt[start:stop] @ x).tocsr()
        r_idx = np.repeat(np.arange(start, stop), np.diff(co.indptr))
        sim = co.data / (norms[r_idx] * norms[co.indices] + shrink)
        sim[co.indices == r_idx] = 0.0
        r, c, v = _top_k_rows(co.indptr, co.indices, sim.astype(np.float32), k)
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    m = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    m.sort_indices()
    return m


def _top_k_rows(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, value) of the k largest positive entries of each CSR row."""
    lengths = np.diff(indptr)
    n_rows = lengths.size
    keep = np.zeros(data.size, dtype=bool)
    short = lengths <= k
    # rows with at most k entries keep them all; the rest partition one by one
    keep[np.repeat(short, lengths)] = True
    for row in np.flatnonzero(~short):
        lo, hi = indptr[row], indptr[row + 1]
        part = np.argpartition(-data[lo:hi], k - 1)[:k]
        keep[lo + part] = True
    keep &= data > 0
    row_ids = np.repeat(np.arange(n_rows), lengths)
    return row_ids[keep], indices[keep], data[keep]


def ease_lambda_grid(g_diag_mean: float, relative: tuple[float, ...]) -> list[float]:
    """Absolute lambdas from multiples of the mean item popularity (diag of G)."""
    base = max(float(g_diag_mean), 1e-6)
    return [float(r * base) for r in relative]
