"""Artifacts: atomic publish, immutability, mmap round trip, corruption detection."""

import re

import numpy as np
import pytest

from recommendations.engine.artifacts import (
    ERR_CORRUPT,
    ERR_EXISTS,
    ERR_MANIFEST,
    ERR_MISSING,
    ArtifactError,
    load_artifacts,
    save_artifacts,
)
from recommendations.engine.recommender import Recommender


def _requests(rec: Recommender):
    hist = np.array([3, 4, 5])
    return [
        rec.recommend(user_pk=1, history_item_pks=hist, k=15, exclude_item_pks=hist),
        rec.recommend(user_pk=None, history_item_pks=hist, k=15),
        rec.similar_items(item_pk=7, k=15),
        rec.recommend(user_pk=None, user_attributes={"age": 40}, k=15),
    ]


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "v1"
    save_artifacts(trained.bundle, path)
    return path


def test_round_trip_with_mmap_gives_same_recommendations(trained, saved):
    loaded = load_artifacts(saved, mmap=True)
    assert _mapped(loaded.item_embeddings)
    for a, b in zip(
        _requests(Recommender(trained.bundle)), _requests(Recommender(loaded))
    ):
        assert np.array_equal(a.item_pks, b.item_pks)
        assert np.allclose(a.scores, b.scores)
        assert a.reasons == b.reasons and a.strategy == b.strategy
    assert loaded.params == trained.params
    assert not any(p.name.startswith(".v1.tmp") for p in saved.parent.iterdir())


def test_refuses_to_overwrite_a_published_version(trained, saved):
    before = sorted(p.name for p in saved.iterdir())
    with pytest.raises(ArtifactError, match=re.escape(ERR_EXISTS)):
        save_artifacts(trained.bundle, saved)
    assert sorted(p.name for p in saved.iterdir()) == before


def _copy(saved, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def test_missing_file_raises(saved, tmp_path):
    broken = _copy(saved, tmp_path)
    (broken / "item_embeddings.npy").unlink()
    with pytest.raises(ArtifactError, match=re.escape(ERR_MISSING)):
        load_artifacts(broken)


def test_corrupt_file_raises(saved, tmp_path):
    broken = _copy(saved, tmp_path)
    path = broken / "neighbors_data.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=re.escape(ERR_CORRUPT)):
        load_artifacts(broken)
    # truncated file is caught even without checksum verification
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ArtifactError, match=re.escape(ERR_CORRUPT)):
        load_artifacts(broken, verify=False)


def test_missing_directory_or_manifest_raises(saved, tmp_path):
    with pytest.raises(ArtifactError, match=re.escape(ERR_MANIFEST)):
        load_artifacts(tmp_path / "nope")
    broken = _copy(saved, tmp_path)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=re.escape(ERR_MANIFEST)):
        load_artifacts(broken)


def _mapped(arr) -> bool:
    """Whether an array's memory is the mapped file (not a private copy)."""
    import mmap

    while arr is not None:
        if isinstance(arr, (np.memmap, mmap.mmap)):
            return True
        arr = getattr(arr, "base", None)
    return False


def _same(a_results, b_results) -> None:
    for a, b in zip(a_results, b_results, strict=True):
        assert np.array_equal(a.item_pks, b.item_pks)
        assert np.allclose(a.scores, b.scores)
        assert a.reasons == b.reasons and a.strategy == b.strategy


def test_loaded_model_serves_from_the_mapped_arrays(saved):
    """A serving process keeps no private copy of the O(users)/O(items) lookups
    or of the neighbour matrix: they stay in the page cache, shared."""
    rec = Recommender(load_artifacts(saved, mmap=True))
    held = {
        "user order": rec._users.sort_order()[0],
        "sorted user pks": rec._users.sort_order()[1],
        "item order": rec._items.sort_order()[0],
        "sorted item pks": rec._items.sort_order()[1],
        "neighbour columns": rec._nb_indices,
        "neighbour weights": rec._nb_data,
        "popularity order": rec._pop_order,
    }
    assert [name for name, arr in held.items() if not _mapped(arr)] == []
    assert rec.popular(k=5).item_pks.size == 5


def test_bundle_saved_without_derived_arrays_still_loads(trained, saved, tmp_path):
    import json

    old = _copy(saved, tmp_path)
    manifest = json.loads((old / "manifest.json").read_text())
    for name in list(manifest["files"]):
        if name.endswith(("_order.npy", "_sorted.npy")):
            (old / name).unlink()
            del manifest["files"][name]
    (old / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_artifacts(old, mmap=True)
    assert loaded.derived == {}
    rec = Recommender(loaded)
    _same(_requests(Recommender(trained.bundle)), _requests(rec))
    assert np.array_equal(
        rec.popular(k=30).item_pks, Recommender(trained.bundle).popular(k=30).item_pks
    )


def test_unordered_pks_round_trip(trained, tmp_path):
    import dataclasses

    rng = np.random.default_rng(5)
    b = trained.bundle
    bundle = dataclasses.replace(
        b,
        item_pks=rng.permutation(b.n_items).astype(np.int64) + 1,
        user_pks=rng.permutation(b.n_users).astype(np.int64) * 7 + 3,
        derived={},
    )
    save_artifacts(bundle, tmp_path / "shuffled")
    loaded = load_artifacts(tmp_path / "shuffled", mmap=True)
    assert set(loaded.derived) == {"item_pks", "user_pks", "popularity"}
    fresh, mapped = Recommender(bundle), Recommender(loaded)
    users = bundle.user_pks[:40].tolist()
    for user_pk in users:
        a = fresh.recommend(user_pk=user_pk, k=10)
        b_ = mapped.recommend(user_pk=user_pk, k=10)
        assert a.strategy == b_.strategy == "personalized"
        assert np.array_equal(a.item_pks, b_.item_pks)
    assert not mapped.knows_user(1) and mapped.knows_user(users[0])
    item = int(bundle.item_pks[10])
    assert np.array_equal(
        fresh.similar_items(item_pk=item, k=10).item_pks,
        mapped.similar_items(item_pk=item, k=10).item_pks,
    )


def test_replaced_pks_are_not_looked_up_with_stale_saved_order(saved, tmp_path):
    """Benchmarks graft users onto a loaded bundle and save it again: the order
    saved for the old pks must not be used for the new ones."""
    bundle = load_artifacts(saved, mmap=True)
    old_pks = np.asarray(bundle.user_pks).copy()
    bundle.user_pks = old_pks[::-1] + 10_000  # decreasing: needs a real order
    rec = Recommender(bundle)
    assert rec.knows_user(int(old_pks[-1]) + 10_000)
    assert not rec.knows_user(int(old_pks[0]))
    before = rec.recommend(user_pk=int(bundle.user_pks[3]), k=10)
    save_artifacts(bundle, tmp_path / "grafted")
    again = Recommender(load_artifacts(tmp_path / "grafted", mmap=True))
    after = again.recommend(user_pk=int(bundle.user_pks[3]), k=10)
    assert np.array_equal(before.item_pks, after.item_pks)
    assert not again.knows_user(int(old_pks[0]))
