"""Approximate nearest neighbours (hnswlib) for the maximum inner product u.v + b.

Items are [v, b] in hnswlib's inner-product space and a user asks with [u, 1].
Measured on trained vectors at 100k items x 64 dims (docs/quality.md, "ANN"):
M=16 / ef 128 found ~0.87 of the exact top-50; M=32, ef_construction 100, ef 100
finds ~0.98 in ~0.05 ms and builds faster. The textbook reduction of MIPS to a
cosine search ([v, b, sqrt(R^2 - |[v, b]|^2)], format "mips-cosine") was perfect on
3,000 items but worse at 100k (~0.91 at the same cost): indexes of that format
still load, new ones are "ip".
"""

from __future__ import annotations

import numpy as np

from .types import TrainConfig

ANN_FORMAT = "ip"  # stored in ModelBundle.blend["ann_format"]
MIPS_FORMAT = "mips-cosine"  # loadable, no longer built
LEGACY_FORMAT = "ip"


def augment_items(item_emb: np.ndarray, item_bias: np.ndarray) -> np.ndarray:
    """Item vectors with the bias appended, so <[u, 1], [v, b]> is the score."""
    return np.hstack(
        [np.asarray(item_emb, np.float32), np.asarray(item_bias, np.float32)[:, None]]
    )


def mips_items(item_emb: np.ndarray, item_bias: np.ndarray) -> np.ndarray:
    """[v, b, sqrt(R^2 - |[v, b]|^2)]: equal-length items for a cosine index."""
    data = augment_items(item_emb, item_bias).astype(np.float64)
    sq = (data**2).sum(axis=1)
    extra = np.sqrt(np.maximum(sq.max(initial=0.0) - sq, 0.0))
    return np.hstack([data, extra[:, None]]).astype(np.float32)


def query_vector(vector: np.ndarray, index_dim: int) -> np.ndarray:
    """A [u, 1] (or [q, 0]) query padded to the index's dimension."""
    q = np.asarray(vector, dtype=np.float32).ravel()
    if q.size < index_dim:
        q = np.concatenate([q, np.zeros(index_dim - q.size, np.float32)])
    return q


def build_index(
    item_emb: np.ndarray,
    item_bias: np.ndarray,
    config: TrainConfig,
    num_threads: int = 1,
):
    """Build the inner-product index (seeded; deterministic with one thread)."""
    import hnswlib

    data = augment_items(item_emb, item_bias)
    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(
        max_elements=data.shape[0],
        ef_construction=config.ann_ef_construction,
        M=config.ann_m,
        random_seed=config.seed,
    )
    index.set_num_threads(num_threads)
    index.add_items(data, np.arange(data.shape[0]), num_threads=num_threads)
    index.set_num_threads(1)
    index.set_ef(config.ann_ef_search)
    return index


def load_index(
    path: str, dim: int, n_items: int, ef: int, ann_format: str = LEGACY_FORMAT
):
    """Load a saved index for single-threaded queries (`dim` = embedding dim)."""
    import hnswlib

    if ann_format == MIPS_FORMAT:
        index = hnswlib.Index(space="cosine", dim=dim + 2)
    else:
        index = hnswlib.Index(space="ip", dim=dim + 1)
    index.load_index(path, max_elements=n_items)
    index.set_num_threads(1)
    index.set_ef(ef)
    return index
