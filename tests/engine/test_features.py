"""Feature encoders: reproducible for new items, equal to scikit-learn's TF-IDF."""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from recommendations.engine.features import ItemFeaturizer, TextEncoder
from recommendations.engine.synthetic import item_metadata


def test_text_encoder_matches_sklearn_tfidf():
    texts = ["red apple pie", "green apple", "pie crust pie", "red wine", "apple"]
    enc = TextEncoder.fit(texts, max_features=100)
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit(texts)
    expected = vec.transform(["apple pie pie unknownword"]).toarray().ravel()
    cols, w = enc.encode("apple pie pie unknownword")
    got = np.zeros(len(enc))
    got[cols] = w
    order = [vec.vocabulary_[t] for t in enc.vocabulary]
    assert np.allclose(got, expected[order], atol=1e-6)


def test_rows_sum_to_one_and_new_item_equals_known_minus_identity(log):
    items = item_metadata(log)
    fz = ItemFeaturizer.fit(items, identity_share=0.5, text_max_features=300)
    f = fz.transform(items)
    assert np.allclose(np.asarray(f.sum(axis=1)).ravel(), 1.0, atol=1e-5)
    new = (
        fz.transform_new(
            title=items.titles[3],
            description=items.descriptions[3],
            categories=items.categories[3],
            tags=items.tags[3],
            attributes=items.attributes[3],
        )
        .toarray()
        .ravel()
    )
    known = f[3].toarray().ravel()
    known[3] = 0.0
    assert np.allclose(new, known * 2.0, atol=1e-6)


def test_state_round_trip_gives_identical_rows(log):
    items = item_metadata(log)
    fz = ItemFeaturizer.fit(items, text_max_features=300)
    state, arrays = fz.to_state()
    fz2 = ItemFeaturizer.from_state(state, arrays)
    assert (fz.transform(items) != fz2.transform(items)).nnz == 0


def test_own_tfidf_fit_equals_scikit_learn_on_a_catalog(log):
    items = item_metadata(log)
    texts = [f"{t} {t} {d}" for t, d in zip(items.titles, items.descriptions)]
    for max_features in (50, 5000):
        enc = TextEncoder.fit(texts, max_features=max_features)
        vec = TfidfVectorizer(
            max_features=max_features,
            min_df=2,
            max_df=0.5,
            stop_words="english",
            sublinear_tf=True,
            dtype=np.float32,
        ).fit(texts)
        assert enc.vocabulary == sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        assert np.array_equal(enc.idf, vec.idf_.astype(np.float32))
