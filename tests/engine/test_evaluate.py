"""Metric definitions on hand-made cases."""

import numpy as np
import scipy.sparse as sp

from recommendations.engine.evaluate import evaluate, evaluate_top_lists


def test_perfect_and_reversed_scorers():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]], np.float32))
    perfect = lambda users: test[users].toarray()
    reverse = lambda users: -test[users].toarray()
    good = evaluate(perfect, train, test, k=2)
    bad = evaluate(reverse, train, test, k=2)
    assert good["precision_at_2"] == 0.5 and good["recall_at_2"] == 1.0
    assert good["ndcg_at_2"] == 1.0 and good["auc"] == 1.0
    assert bad["auc"] == 0.0 and bad["ndcg_at_2"] < good["ndcg_at_2"]


def test_top_lists_match_dense_evaluation():
    rng = np.random.default_rng(0)
    train = sp.random(30, 40, density=0.1, format="csr", random_state=1)
    test = sp.random(30, 40, density=0.1, format="csr", random_state=2)
    test = test - test.multiply(train > 0)
    test.eliminate_zeros()
    scores = rng.random((30, 40))
    dense = evaluate(lambda u: scores[u], train, test, k=5)

    def recommend(u):
        s = scores[u].copy()
        s[train[u].indices] = -np.inf
        return np.argsort(-s)[:5]

    lists = evaluate_top_lists(recommend, test, k=5)
    for key in ("precision_at_5", "recall_at_5", "ndcg_at_5", "coverage"):
        assert np.isclose(dense[key], lists[key])
