"""Artifacts via the storage API: used in place locally, cached per machine else."""

import hashlib
import json
import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import override_settings

from recommendations import artifact_store as store

REMOTE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # any storage that is not local files behaves like S3 here: downloaded and cached
    "artifacts": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
}


def _write_artifact(directory: Path, payload: bytes = b"\x93NUMPY fake array") -> Path:
    """A complete artifact as engine.save_artifacts leaves it: files + manifest."""
    directory.mkdir(parents=True)
    files = {}
    for name, data in (("user_embeddings.npy", payload), ("params.json", b'{"a": 1}')):
        (directory / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest()}
    (directory / "manifest.json").write_text(json.dumps({"files": files}))
    return directory


@pytest.fixture
def dirs(tmp_path, settings):
    settings.RECSITE = {
        **settings.RECSITE,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "ARTIFACTS_CACHE_DIR": str(tmp_path / "cache"),
    }
    return tmp_path


def test_local_storage_uses_the_saved_files_in_place(dirs):
    staging = store.artifact_staging_dir(name="v1-abc")
    assert staging == dirs / "artifacts" / "v1-abc"
    _write_artifact(staging)

    assert store.artifact_publish(source_dir=staging, name="v1-abc") == "v1-abc"

    assert store.artifact_exists(name="v1-abc")
    assert store.artifact_local_dir(name="v1-abc") == staging
    assert not (dirs / "cache").exists()  # nothing copied


def test_remote_storage_downloads_once_and_verifies(dirs):
    with override_settings(STORAGES=REMOTE):
        staging = store.artifact_staging_dir(name="v2-abc")
        _write_artifact(staging, payload=b"x" * 3_000_000)

        name = store.artifact_publish(source_dir=staging, name="v2-abc")

        storage = store.artifacts_storage()
        assert storage.exists("v2-abc/manifest.json")
        assert storage.exists("v2-abc/user_embeddings.npy")
        # the training machine keeps its copy as its cache entry
        assert not staging.exists()
        os.rename(dirs / "cache" / name, dirs / "gone")  # a fresh machine: empty cache

        local = store.artifact_local_dir(name=name)

        assert local == dirs / "cache" / "v2-abc"
        assert (local / "user_embeddings.npy").read_bytes() == b"x" * 3_000_000
        assert (local / "manifest.json").is_file()
        storage.delete("v2-abc/user_embeddings.npy")  # the cache is used from now on
        assert store.artifact_local_dir(name=name) == local


def test_corrupt_download_leaves_nothing_in_the_cache(dirs):
    with override_settings(STORAGES=REMOTE):
        staging = store.artifact_staging_dir(name="v3-abc")
        _write_artifact(staging)
        store.artifact_publish(source_dir=staging, name="v3-abc")
        cache = dirs / "cache"
        os.rename(cache / "v3-abc", dirs / "gone")
        storage = store.artifacts_storage()
        storage.delete("v3-abc/params.json")
        storage.save("v3-abc/params.json", ContentFile(b"tampered"))

        with pytest.raises(store.ArtifactStoreError, match="sha256"):
            store.artifact_local_dir(name="v3-abc")

        assert not (cache / "v3-abc").exists()
        leftovers = [
            p.name for p in cache.iterdir() if p.name.startswith(".v3-abc.tmp")
        ]
        assert leftovers == []


def test_published_artifacts_are_immutable(dirs):
    with override_settings(STORAGES=REMOTE):
        first = _write_artifact(dirs / "a")
        store.artifact_publish(source_dir=first, name="v4")
        second = _write_artifact(dirs / "b", payload=b"other")

        with pytest.raises(store.ArtifactStoreError, match="immutable"):
            store.artifact_publish(source_dir=second, name="v4")


def test_incomplete_directory_is_refused(dirs):
    partial = dirs / "partial"
    partial.mkdir()
    (partial / "user_embeddings.npy").write_bytes(b"x")

    with pytest.raises(store.ArtifactStoreError, match="manifest"):
        store.artifact_publish(source_dir=partial, name="v5")


def test_delete_and_prune(dirs):
    with override_settings(STORAGES=REMOTE):
        for name in ("v6", "v7"):
            store.artifact_publish(source_dir=_write_artifact(dirs / name), name=name)
        store.artifact_local_dir(name="v6")
        store.artifact_local_dir(name="v7")

        assert store.artifact_cache_prune(keep=["v7"]) == ["v6"]
        store.artifact_delete(name="v7")

        assert not store.artifact_exists(name="v7")
        assert not (dirs / "cache" / "v7").exists()
        assert store.artifact_exists(name="v6")  # pruning the cache keeps the storage


def test_absolute_paths_recorded_before_the_store_still_work(dirs):
    old = _write_artifact(dirs / "old-layout" / "v8-abc")

    assert store.artifact_exists(name=str(old))
    assert store.artifact_local_dir(name=str(old)) == old
    assert store.artifact_name(str(old)) == "v8-abc"


@pytest.mark.parametrize("name", ["", "..", "a/b", "v1 x"])
def test_names_are_one_safe_path_segment(dirs, name):
    with pytest.raises(store.ArtifactStoreError):
        store.artifact_staging_dir(name=name)
