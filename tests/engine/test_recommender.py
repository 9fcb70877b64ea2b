"""Serving object: exclusions, filters, fold-in, cold start, overlays."""

import numpy as np
import pytest

from recommendations.engine.types import ItemOverlay, RecommendationResult

from .conftest import item_pks


def _history(log, user_index: int) -> np.ndarray:
    return item_pks(np.unique(log.item_index[log.user_index == user_index]))


def _check(result: RecommendationResult, k: int) -> None:
    assert len(result.item_pks) == len(result.scores) == len(result.reasons) <= k
    assert np.all(np.isfinite(result.scores))
    assert np.all(np.diff(result.scores) <= 1e-6)  # ranked best first
    assert len(set(result.item_pks.tolist())) == len(result.item_pks)


def test_exclusions_are_never_returned(log, recommender):
    history = _history(log, 0)
    # exclude the history plus what the model would recommend first
    first = recommender.recommend(user_pk=1, history_item_pks=history, k=20)
    exclude = np.concatenate([history, first.item_pks])
    res = recommender.recommend(
        user_pk=1, history_item_pks=history, k=50, exclude_item_pks=exclude
    )
    _check(res, 50)
    assert len(res) == 50
    assert not np.isin(res.item_pks, exclude).any()
    assert res.strategy == "personalized"


def test_allowed_restricts_candidates(log, recommender):
    allowed = np.arange(100, 140)
    res = recommender.recommend(
        user_pk=3,
        history_item_pks=_history(log, 2),
        k=10,
        allowed_item_pks=allowed,
        exclude_item_pks=np.array([100, 101]),
    )
    _check(res, 10)
    assert len(res) == 10
    assert np.isin(res.item_pks, allowed).all()
    assert not np.isin(res.item_pks, [100, 101]).any()
    pop = recommender.popular(k=5, allowed_item_pks=allowed)
    assert np.isin(pop.item_pks, allowed).all()


def test_fold_in_moves_recommendations_toward_a_new_topic(log, recommender):
    topics = log.item_topics
    user = 5
    history = _history(log, user)
    liked = np.bincount(topics[history - 1], minlength=topics.max() + 1)
    target = int(np.argmin(liked))  # a topic this user has (almost) never touched
    in_topic = item_pks(np.flatnonzero(topics == target))
    before = recommender.recommend(
        user_pk=None, history_item_pks=history, k=20, exclude_item_pks=history
    )
    new = in_topic[:8]
    after = recommender.recommend(
        user_pk=None,
        history_item_pks=np.concatenate([history, new, new]),
        k=20,
        exclude_item_pks=np.concatenate([history, new]),
    )
    share_before = np.isin(before.item_pks, in_topic).mean()
    share_after = np.isin(after.item_pks, in_topic).mean()
    assert share_after >= share_before + 0.2
    assert any(
        r.kind == "because_you_interacted" and r.item_pk in set(new.tolist())
        for r in after.reasons
    )


def test_known_user_with_new_history_changes_without_retraining(log, recommender):
    # a typical user (not a heavy one: EASE is linear in the history, so five new
    # items barely move a 150-item history unless serving weights recency)
    counts = np.bincount(log.user_index)
    user = int(np.flatnonzero((counts >= 15) & (counts <= 40))[0])
    history = _history(log, user)
    liked = np.bincount(
        log.item_topics[history - 1], minlength=log.item_topics.max() + 1
    )
    target = np.flatnonzero(log.item_topics == int(np.argmin(liked)))
    in_topic = item_pks(target)
    popular_first = item_pks(target[np.argsort(-recommender.bundle.popularity[target])])
    a = recommender.recommend(
        user_pk=user + 1, history_item_pks=history, k=10, exclude_item_pks=history
    )
    extra = popular_first[:5]
    b = recommender.recommend(
        user_pk=user + 1,
        history_item_pks=np.concatenate([history, extra, extra]),
        k=10,
        exclude_item_pks=np.concatenate([history, extra]),
    )
    assert b.strategy == "personalized"
    assert (
        np.isin(b.item_pks, in_topic).sum() >= np.isin(a.item_pks, in_topic).sum() + 2
    )


def test_unknown_user_with_attributes_is_cold_user_and_nobody_is_popular(
    log, recommender
):
    category = log.extra["category_names"][0]
    res = recommender.recommend(
        user_pk=10**9,
        history_item_pks=np.array([], dtype=np.int64),
        user_attributes={"age": 30, "interests": [category]},
        k=10,
    )
    _check(res, 10)
    assert res.strategy == "cold_user" and len(res) == 10
    nobody = recommender.recommend(user_pk=None, history_item_pks=None, k=10)
    assert nobody.strategy == "popular"
    assert (
        nobody.item_pks[0]
        == recommender.item_pks[np.argmax(recommender.bundle.popularity)]
    )


def test_new_item_from_metadata_lands_near_its_category(log, recommender):
    topics = log.item_topics
    source = log.items[11]
    vec = recommender.item_vector_from_metadata(
        title=source["title"],
        description=source["description"],
        categories=source["categories"],
        tags=source["tags"],
        attributes=source["attributes"],
    )
    res = recommender.similar_items(item_vector=vec, k=10)
    _check(res, 10)
    same_topic = (topics[res.item_pks - 1] == topics[11]).mean()
    base_rate = (topics == topics[11]).mean()
    assert same_topic >= 0.6 and same_topic > 3 * base_rate
    assert res.strategy == "content"


def test_overlay_items_are_candidates_and_respect_exclusions(log, recommender):
    source = log.items[20]
    vec = recommender.item_vector_from_metadata(
        title=source["title"],
        description=source["description"],
        categories=source["categories"],
        tags=source["tags"],
        attributes=source["attributes"],
    )
    overlay = ItemOverlay.from_vectors(
        [10**6], [vec], [source["categories"]], [source["tags"]]
    )
    # the overlay item and its catalog twin (same metadata) are the nearest
    # neighbours of that metadata vector
    res = recommender.similar_items(item_vector=vec, k=10, overlay=overlay)
    assert sorted(res.item_pks[:2].tolist()) == [21, 10**6]
    res = recommender.similar_items(
        item_vector=vec, k=10, overlay=overlay, exclude_item_pks=np.array([10**6])
    )
    assert 10**6 not in res.item_pks.tolist() and len(res) == 10
    res = recommender.similar_items(
        item_pk=21, k=10, overlay=overlay, allowed_item_pks=np.array([10**6, 22])
    )
    assert sorted(res.item_pks.tolist()) == [22, 10**6]


def test_similar_items_of_known_item_share_its_topic(log, recommender):
    topics = log.item_topics
    popular_item = int(np.argmax(recommender.bundle.popularity))
    res = recommender.similar_items(item_pk=popular_item + 1, k=10)
    _check(res, 10)
    assert (topics[res.item_pks - 1] == topics[popular_item]).mean() >= 0.6
    assert all(r.kind == "similar_to" for r in res.reasons)


def test_session_uses_given_items(log, recommender):
    items = item_pks(np.flatnonzero(log.item_topics == 1)[:3])
    res = recommender.session(item_pks=items, k=10, exclude_item_pks=items)
    _check(res, 10)
    assert res.strategy == "session"
    assert (log.item_topics[res.item_pks - 1] == 1).mean() >= 0.5
    assert recommender.session(item_pks=np.array([10**9]), k=5).strategy == "popular"


@pytest.mark.parametrize("k", [0, 1, 5])
def test_k_is_honoured(recommender, k):
    res = recommender.recommend(user_pk=2, history_item_pks=np.array([1, 2]), k=k)
    assert len(res) == k


def _in_topic(recommender, target, history, weights, stamps, **ask):
    res = recommender.recommend(
        history_item_pks=history,
        history_weights=weights,
        history_timestamps=stamps,
        **ask,
    )
    _check(res, 10)
    return int(np.isin(res.item_pks, item_pks(target)).sum()), res


def test_fresh_actions_shift_a_heavy_users_list(log, recommender):
    """Five actions after training in an untouched topic move a heavy user's list
    when the history comes with timestamps (recency + trained/fold-in mix)."""
    from recommendations.engine.synthetic import DEFAULT_INTERACTION_TYPES, TYPE_NAMES

    signed = {
        t.name: t.weight * (1 if t.is_positive else -1)
        for t in DEFAULT_INTERACTION_TYPES
    }
    type_weight = np.array([signed[name] for name in TYPE_NAMES])
    bundle = recommender.bundle
    shifts = []
    for user in np.argsort(-np.bincount(log.user_index))[:3]:
        rows = np.flatnonzero(log.user_index == user)
        assert rows.size >= 300  # a heavy user
        pks = item_pks(log.item_index[rows])
        weights = type_weight[log.type_index[rows]]
        stamps = log.timestamp[rows]
        liked = np.bincount(
            log.item_topics[pks - 1], minlength=log.item_topics.max() + 1
        )
        target = np.flatnonzero(log.item_topics == int(np.argmin(liked)))
        new = item_pks(target[np.argsort(-bundle.popularity[target])][:5])
        seen = np.union1d(pks, new)
        now = bundle.blend["trained_until"] + 3600.0

        ask = {"user_pk": int(user) + 1, "k": 10, "exclude_item_pks": seen}
        more_pks, more_weights = np.r_[pks, new], np.r_[weights, np.full(5, 2.0)]
        before, _ = _in_topic(recommender, target, pks, weights, stamps, **ask)
        after, res = _in_topic(
            recommender, target, more_pks, more_weights, np.r_[stamps, [now] * 5], **ask
        )
        untimed, _ = _in_topic(recommender, target, more_pks, more_weights, None, **ask)
        assert after >= before + 3, (user, before, after)
        assert any(
            r.kind == "because_you_interacted" and r.item_pk in set(new.tolist())
            for r in res.reasons
        )
        shifts.append((after - before, untimed - before))
    # without timestamps the new rows are five among hundreds: a smaller shift
    assert sum(a for a, _ in shifts) > sum(b for _, b in shifts) + 5


def test_history_timestamps_must_match_history(recommender):
    with pytest.raises(ValueError):
        recommender.recommend(
            user_pk=1,
            history_item_pks=np.array([1, 2, 3]),
            history_timestamps=np.array([1.0, 2.0]),
            k=5,
        )
