"""Engine fixtures: small synthetic data and one trained model per session."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import synthetic
from recommendations.engine.evaluate import holdout_pairs
from recommendations.engine.recommender import Recommender
from recommendations.engine.train import TrainResult, train_model
from recommendations.engine.types import TrainConfig

# small but not trivial: the whole engine suite must stay well under a minute
N_USERS, N_ITEMS, N_ROWS = 600, 900, 30_000
FAST_CONFIG = TrainConfig(
    max_epochs=15,
    eval_every_epochs=5,
    search_max_trials=1,
    time_budget_s=120,
    ease_lambda_factors=(2.0, 8.0, 32.0),
    blend_alphas=(0.0, 0.3, 0.6, 1.0),
)


@dataclass
class Holdout:
    """A planted-structure data set split 75/25 per user, and a model on the 75%."""

    log: synthetic.InteractionLog
    train: sp.csr_matrix
    test: sp.csr_matrix
    result: TrainResult
    recommender: Recommender


@pytest.fixture(scope="session")
def log() -> synthetic.InteractionLog:
    """Synthetic data with planted tastes."""
    return synthetic.generate(
        n_users=N_USERS, n_items=N_ITEMS, n_interactions=N_ROWS, seed=7
    )


@pytest.fixture(scope="session")
def trained(log) -> TrainResult:
    """A model trained on all synthetic rows with the typed interaction weights."""
    return train_model(synthetic.to_training_data(log), FAST_CONFIG)


@pytest.fixture(scope="session")
def recommender(trained) -> Recommender:
    """Serving object over the session model."""
    return Recommender(trained.bundle)


@pytest.fixture(scope="session")
def holdout(log) -> Holdout:
    """Benchmark protocol: positive pairs, per-user random 75/25 split."""
    positive = log.type_index != synthetic.TYPE_NAMES.index("dislike")
    train, test = holdout_pairs(
        log.user_index[positive],
        log.item_index[positive],
        len(log.users),
        len(log.items),
        fraction=0.25,
        seed=3,
    )
    result = train_model(synthetic.training_data_from_pairs(log, train), FAST_CONFIG)
    return Holdout(log, train, test, result, Recommender(result.bundle))


def item_pks(indices: np.ndarray) -> np.ndarray:
    """Synthetic item index -> pk."""
    return np.asarray(indices, dtype=np.int64) + 1
