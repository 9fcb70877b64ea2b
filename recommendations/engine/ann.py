"""Approximate nearest neighbours (hnswlib, inner product) over [v_j, b_j]."""

from __future__ import annotations

import numpy as np

from .types import TrainConfig


def augment_items(item_emb: np.ndarray, item_bias: np.ndarray) -> np.ndarray:
    """Item vectors with the bias appended, so <[u, 1], [v, b]> is the score."""
    return np.hstack(
        [np.asarray(item_emb, np.float32), np.asarray(item_bias, np.float32)[:, None]]
    )


def build_index(
    item_emb: np.ndarray,
    item_bias: np.ndarray,
    config: TrainConfig,
    num_threads: int = 1,
):
    """Build an hnswlib inner-product index (seeded; deterministic with 1 thread)."""
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


def load_index(path: str, dim: int, n_items: int, ef: int):
    """Load a saved index for single-threaded queries."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=dim)
    index.load_index(path, max_elements=n_items)
    index.set_num_threads(1)
    index.set_ef(ef)
    return index
