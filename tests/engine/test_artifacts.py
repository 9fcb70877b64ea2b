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
    assert isinstance(loaded.item_embeddings, np.memmap)
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
