"""Training: planted structure is learnt, metrics are reported, runs are seeded."""

import numpy as np

from recommendations.engine import synthetic
from recommendations.engine.baselines import Popularity
from recommendations.engine.evaluate import evaluate, evaluate_top_lists
from recommendations.engine.recommender import Recommender
from recommendations.engine.train import lightfm_threads, train_model
from recommendations.engine.types import TrainConfig

METRIC_KEYS = ("precision_at_10", "recall_at_10", "ndcg_at_10", "auc", "coverage")


def _serving_lists(holdout):
    rec = holdout.recommender
    train = holdout.train

    def recommend(u: int) -> np.ndarray:
        seen = train.indices[train.indptr[u] : train.indptr[u + 1]] + 1
        res = rec.recommend(
            user_pk=u + 1, history_item_pks=seen, k=10, exclude_item_pks=seen
        )
        return res.item_pks - 1

    return recommend


def test_blend_beats_popularity_by_a_clear_margin(holdout):
    pop = evaluate(Popularity().fit(holdout.train), holdout.train, holdout.test)
    served = evaluate_top_lists(_serving_lists(holdout), holdout.test)
    assert served["precision_at_10"] > 1.3 * pop["precision_at_10"]
    assert served["ndcg_at_10"] > 1.3 * pop["ndcg_at_10"]
    assert served["coverage"] > 3 * pop["coverage"]


def test_metrics_and_stats_are_reported(trained):
    for key in METRIC_KEYS:
        assert np.isfinite(trained.metrics[key]), key
        assert np.isfinite(trained.metrics[f"cold_{key}"]), key
    # cold items ranked from metadata alone must beat chance
    assert trained.metrics["cold_auc"] > 0.6
    assert trained.data_stats["n_items"] == len(
        synthetic.item_metadata(
            synthetic.generate(n_users=2, n_items=900, n_interactions=4, seed=0)
        )
    )
    chosen = trained.params["chosen"]
    assert 0.0 <= chosen["blend_alpha"] <= 1.0
    assert chosen["item_item"]["model"] == "ease"
    assert TrainConfig.from_dict(trained.params) == TrainConfig.from_dict(
        TrainConfig.from_dict(trained.params).as_dict()
    )


def test_progress_is_reported_and_monotonic():
    log = synthetic.generate(n_users=120, n_items=150, n_interactions=3000, seed=1)
    seen = []
    train_model(
        synthetic.to_training_data(log),
        TrainConfig(max_epochs=3, search=False),
        progress=lambda stage, fraction: seen.append((stage, fraction)),
    )
    fractions = [f for _, f in seen]
    assert len(seen) >= 5 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_seeded_runs_are_identical():
    log = synthetic.generate(n_users=150, n_items=200, n_interactions=4000, seed=2)
    data = synthetic.to_training_data(log)
    config = TrainConfig(max_epochs=4, eval_every_epochs=2, search_max_trials=2)
    a = train_model(data, config).bundle
    b = train_model(data, config).bundle
    assert np.array_equal(a.item_embeddings, b.item_embeddings)
    assert np.array_equal(a.user_embeddings, b.user_embeddings)
    assert (a.neighbors != b.neighbors).nnz == 0
    assert a.blend == b.blend
    c = train_model(data, config.replace(seed=config.seed + 1)).bundle
    assert not np.array_equal(a.item_embeddings, c.item_embeddings)


def test_large_catalog_uses_sparse_cosine_neighbours():
    log = synthetic.generate(n_users=150, n_items=300, n_interactions=4000, seed=3)
    result = train_model(
        synthetic.to_training_data(log),
        TrainConfig(max_epochs=2, search=False, ease_max_items=100, neighbors_k=20),
    )
    assert result.params["chosen"]["item_item"]["model"] == "cosine"
    assert np.diff(result.bundle.neighbors.indptr).max() <= 20


def test_continuing_the_validation_model_serves_as_well_as_a_refit(holdout):
    """The large-data path (continue the validation model with passes over the
    held-out pairs instead of refitting) must not cost quality."""
    from .conftest import FAST_CONFIG

    result = train_model(
        synthetic.training_data_from_pairs(holdout.log, holdout.train),
        FAST_CONFIG.replace(continue_max_holdout_share=1.0),
    )
    chosen = result.params["chosen"]
    assert chosen["final_fit"] == "continued"
    assert holdout.result.params["chosen"]["final_fit"] == "refit"
    continued = evaluate_top_lists(
        _serving_lists(
            type(holdout)(
                holdout.log,
                holdout.train,
                holdout.test,
                result,
                Recommender(result.bundle),
            )
        ),
        holdout.test,
    )
    refit = evaluate_top_lists(_serving_lists(holdout), holdout.test)
    assert continued["precision_at_10"] >= 0.95 * refit["precision_at_10"]


def test_threads_follow_size_unless_deterministic_or_explicit():
    big = 10 * TrainConfig().parallel_min_pairs
    assert lightfm_threads(TrainConfig(), 1000) == 1
    assert lightfm_threads(TrainConfig(), big) >= 1
    assert lightfm_threads(TrainConfig(deterministic=True), big) == 1
    assert lightfm_threads(TrainConfig(num_threads=3), 1000) == 3
