"""Item-item models: the sparse cosine neighbours equal a dense reference."""

import numpy as np
import scipy.sparse as sp

from recommendations.engine.itemitem import cosine_neighbors


def _dense_reference(x: sp.csr_matrix, k: int, shrink: float) -> np.ndarray:
    dense = x.toarray().astype(np.float64)
    co = dense.T @ dense
    norms = np.sqrt(np.diag(co))
    sim = co / (norms[:, None] * norms[None, :] + shrink)
    np.fill_diagonal(sim, 0.0)
    out = np.zeros_like(sim)
    for i, row in enumerate(sim):
        top = np.argsort(-row, kind="stable")[:k]
        top = top[row[top] > 0]
        out[i, top] = row[top]
    return out


def test_sparse_cosine_top_k_matches_dense_computation():
    rng = np.random.default_rng(0)
    # long-tailed users and items, repeated weights, an empty item and user
    users = rng.zipf(1.6, 4000) % 300
    items = rng.zipf(1.4, 4000) % 120
    x = sp.csr_matrix(
        (rng.uniform(0.5, 2.0, users.size), (users, items)), shape=(301, 121)
    )
    x.sum_duplicates()
    # tiny blocks force many products; k smaller than most rows
    got = cosine_neighbors(x, k=7, shrink=3.0, block_nnz=500)
    ref = _dense_reference(x, 7, 3.0)
    assert got.shape == (121, 121)
    assert np.diff(got.indptr).max() <= 7
    assert got.diagonal().sum() == 0
    for i in range(121):
        g = np.sort(got[i].toarray().ravel())[::-1][:7]
        r = np.sort(ref[i])[::-1][:7]
        assert np.allclose(g, r, atol=1e-5), i
    # the same neighbours wherever the k-th value is not tied
    agree = (abs(got.toarray() - ref) < 1e-5).mean()
    assert agree > 0.99
