"""Items created after training: compared with like (metadata-only vectors)."""

import dataclasses

import numpy as np
import pytest

from recommendations.engine.ann import build_index
from recommendations.engine.features import metadata_only_rows
from recommendations.engine.recommender import Recommender
from recommendations.engine.synthetic import item_metadata
from recommendations.engine.types import ItemOverlay, ItemVector, TrainConfig

NEW_PK = 10**6


@pytest.fixture(scope="module", params=["exact", "ann"])
def served(request, trained):
    """The session model served by full scans, and through an hnswlib index."""
    bundle = trained.bundle
    if request.param == "ann":
        config = TrainConfig.from_dict(bundle.params).replace(ann_candidates=100)
        bundle = dataclasses.replace(
            bundle,
            ann_index=build_index(bundle.item_embeddings, bundle.item_biases, config),
            params={**bundle.params, "ann_candidates": 100},
        )
    return Recommender(bundle)


def _vector(recommender, item: dict) -> ItemVector:
    return recommender.item_vector_from_metadata(
        title=item["title"],
        description=item["description"],
        categories=item["categories"],
        tags=item["tags"],
        attributes=item["attributes"],
    )


def _sources(recommender, n: int = 6) -> list[int]:
    """Item indices across the popularity range (head, torso, tail)."""
    order = np.argsort(-np.asarray(recommender.bundle.popularity), kind="stable")
    picks = np.linspace(0, order.size // 2, n).astype(int)
    return [int(order[p]) for p in picks]


def _overlay_with_twin(recommender, log, source: int) -> ItemOverlay:
    """A copy of `source`'s metadata among other new items (copies of others)."""
    others = [(source * 7 + 13 * j) % len(log.items) for j in range(1, 6)]
    pks = [NEW_PK] + [NEW_PK + j for j in range(1, 6)]
    items = [log.items[source]] + [log.items[o] for o in others]
    return ItemOverlay.from_vectors(
        pks,
        [_vector(recommender, it) for it in items],
        [it["categories"] for it in items],
        [it["tags"] for it in items],
    )


def test_metadata_twin_ranks_in_its_sources_top_10_and_back(log, served):
    recommender = served
    for source in _sources(recommender):
        overlay = _overlay_with_twin(recommender, log, source)
        res = recommender.similar_items(item_pk=source + 1, k=10, overlay=overlay)
        assert NEW_PK in res.item_pks.tolist(), source
        assert np.all(np.isfinite(res.scores)) and np.all(np.diff(res.scores) <= 0)
        # the new item's own list (as serving asks for it: by pk in the overlay)
        back = recommender.similar_items(item_pk=NEW_PK, k=10, overlay=overlay)
        assert source + 1 in back.item_pks.tolist(), source
        assert NEW_PK not in back.item_pks.tolist()
        assert all(r.item_pk == NEW_PK for r in back.reasons)


def test_unrelated_new_items_do_not_crowd_a_similar_list(log, served):
    recommender = served
    topics = log.item_topics
    source = _sources(recommender)[0]
    far = np.flatnonzero(topics != topics[source])[:30]
    items = [log.items[i] for i in far]
    overlay = ItemOverlay.from_vectors(
        [NEW_PK + j for j in range(len(items))],
        [_vector(recommender, it) for it in items],
    )
    res = recommender.similar_items(item_pk=source + 1, k=10, overlay=overlay)
    assert np.sum(res.item_pks >= NEW_PK) <= 1
    plain = recommender.similar_items(item_pk=source + 1, k=10)
    assert len(set(res.item_pks.tolist()) & set(plain.item_pks.tolist())) >= 9


def test_twin_respects_exclusions_and_allowed(log, served):
    recommender = served
    source = _sources(recommender)[1]
    overlay = _overlay_with_twin(recommender, log, source)
    res = recommender.similar_items(
        item_pk=source + 1,
        k=10,
        overlay=overlay,
        exclude_item_pks=np.array([NEW_PK]),
    )
    assert NEW_PK not in res.item_pks.tolist() and len(res) == 10
    allowed = np.array([NEW_PK, NEW_PK + 1, 5, 6])
    res = recommender.similar_items(
        item_pk=source + 1, k=10, overlay=overlay, allowed_item_pks=allowed
    )
    assert set(res.item_pks.tolist()) <= set(allowed.tolist())
    assert res.item_pks[0] == NEW_PK


def test_new_item_is_a_fair_candidate_in_recommend(log, served):
    recommender = served
    """A new copy of the unseen item whose metadata suits a user best is in their
    top 10 (new items are not penalised for having no co-interactions yet)."""
    b = recommender.bundle
    for user in (4, 9, 30):
        history = np.unique(log.item_index[log.user_index == user]) + 1
        uvec = b.user_embeddings[user]
        by_metadata = b.item_metadata_embeddings @ uvec + b.item_metadata_biases
        by_metadata[history - 1] = -np.inf
        source = int(np.argmax(by_metadata))
        overlay = _overlay_with_twin(recommender, log, source)
        res = recommender.recommend(
            user_pk=user + 1,
            history_item_pks=history,
            k=10,
            exclude_item_pks=history,
            overlay=overlay,
        )
        assert NEW_PK in res.item_pks.tolist(), user
        assert np.all(np.isfinite(res.scores)) and np.all(np.diff(res.scores) <= 0)


def test_item_metadata_vector_equals_vector_built_from_metadata(log, recommender):
    for source in (0, 17, 401):
        saved = recommender.item_metadata_vector(item_pk=source + 1)
        built = _vector(recommender, log.items[source])
        assert np.allclose(saved.vector, built.vector, atol=1e-5)
        assert saved.bias == pytest.approx(built.bias, abs=1e-5)
    assert recommender.item_metadata_vector(item_pk=10**9) is None


def test_metadata_only_rows_equal_transform_new(log, trained):
    fz = trained.bundle.item_featurizer
    items = item_metadata(log)
    rows = metadata_only_rows(fz.transform(items), len(items))
    for i in (2, 50):
        new = fz.transform_new(
            title=items.titles[i],
            description=items.descriptions[i],
            categories=items.categories[i],
            tags=items.tags[i],
            attributes=items.attributes[i],
        )
        assert np.allclose(rows[i].toarray(), new.toarray(), atol=1e-6)


def test_bundle_without_metadata_vectors_still_serves_overlays(log, trained):
    old = Recommender(
        dataclasses.replace(
            trained.bundle, item_metadata_embeddings=None, item_metadata_biases=None
        )
    )
    assert old.item_metadata_vector(item_pk=1) is None
    overlay = _overlay_with_twin(old, log, 3)
    res = old.similar_items(item_pk=4, k=10, overlay=overlay)
    assert len(res) == 10 and np.all(np.isfinite(res.scores))
    back = old.similar_items(item_pk=NEW_PK, k=10, overlay=overlay)
    assert len(back) == 10
