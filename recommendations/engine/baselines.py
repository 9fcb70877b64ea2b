"""Reference models sharing the scorer interface of `evaluate.evaluate`.

Each baseline is fitted on a user x item matrix and then called with user indices;
the user's training row is their history.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from .itemitem import cosine_neighbors, ease_from_gram, gram


class Popularity:
    """Number of distinct users per item, the same for everyone."""

    name = "popularity"

    def fit(self, train: sp.csr_matrix) -> Popularity:
        """Count users per item."""
        self.train = train.tocsr()
        self.scores = np.bincount(self.train.indices, minlength=train.shape[1]).astype(
            np.float32
        )
        return self

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Same popularity row for every user."""
        return np.broadcast_to(self.scores, (len(users), self.scores.size))


class ItemKNN:
    """Shrunk cosine item-kNN on binary interactions."""

    name = "item-kNN"

    def __init__(self, k: int = 100, shrink: float = 10.0) -> None:
        self.k, self.shrink = k, shrink

    def fit(self, train: sp.csr_matrix) -> ItemKNN:
        """Compute top-k neighbours."""
        self.train = _binary(train)
        self.neighbors = cosine_neighbors(self.train, k=self.k, shrink=self.shrink)
        return self

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """History times neighbour matrix."""
        return (self.train[users] @ self.neighbors).toarray()


class EASE:
    """Dense EASE (Steck 2019) on binary interactions."""

    name = "EASE"

    def __init__(self, lam: float | None = None, factor: float = 4.0) -> None:
        self.lam, self.factor = lam, factor

    def fit(self, train: sp.csr_matrix) -> EASE:
        """Closed-form fit; lambda defaults to factor x mean item popularity."""
        self.train = _binary(train)
        g = gram(self.train)
        lam = (
            self.lam if self.lam is not None else self.factor * float(np.diag(g).mean())
        )
        self.lam_used = lam
        self.b = ease_from_gram(g, lam).astype(np.float32)
        return self

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """History times B."""
        return np.asarray(self.train[users] @ self.b)


class LightFMScorer:
    """LightFM with optional feature matrices (None = pure collaborative filtering)."""

    def __init__(
        self,
        *,
        components: int = 32,
        epochs: int = 30,
        learning_rate: float = 0.05,
        loss: str = "warp",
        alpha: float = 1e-6,
        item_features: sp.csr_matrix | None = None,
        user_features: sp.csr_matrix | None = None,
        seed: int = 42,
        num_threads: int = 1,
        name: str = "LightFM",
    ) -> None:
        self.name = name
        self.epochs = epochs
        self.item_features, self.user_features = item_features, user_features
        self.num_threads = num_threads
        self.model = LightFM(
            no_components=components,
            learning_rate=learning_rate,
            loss=loss,
            item_alpha=alpha,
            user_alpha=alpha,
            random_state=np.random.RandomState(seed),
        )

    def fit(self, train: sp.csr_matrix) -> LightFMScorer:
        """Fit for a fixed number of epochs on binary interactions."""
        self.train = _binary(train)
        self.model.fit(
            self.train.tocoo(),
            item_features=self.item_features,
            user_features=self.user_features,
            epochs=self.epochs,
            num_threads=self.num_threads,
        )
        ib, ie = self.model.get_item_representations(self.item_features)
        ub, ue = self.model.get_user_representations(self.user_features)
        self.item_emb, self.item_b = ie.astype(np.float32), ib.astype(np.float32)
        self.user_emb, self.user_b = ue.astype(np.float32), ub.astype(np.float32)
        return self

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Dot products plus item bias."""
        return self.user_emb[users] @ self.item_emb.T + self.item_b[None, :]


def _binary(m: sp.csr_matrix) -> sp.csr_matrix:
    m = m.tocsr().astype(np.float32)
    m.data[:] = 1.0
    return m
