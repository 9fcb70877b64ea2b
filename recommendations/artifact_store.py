"""Model artifacts through Django's storage API, cached per machine for memory-mapping.

Training writes a complete artifact directory with `engine.artifacts.save_artifacts`
(atomic, with `manifest.json` listing every file and its sha256), then calls
`artifact_publish`, which puts the files into the artifacts storage with the manifest
last, so a manifest in storage means a complete artifact. Serving calls
`artifact_local_dir` and memory-maps what it returns:

- local storage (the default, `FileSystemStorage` at `RECSITE["ARTIFACTS_DIR"]`): the
  files are used where they are; publishing is free when training saved them there
  (`artifact_staging_dir` says where to save);
- any other storage (S3-compatible through django-storages, set with
  `ARTIFACTS_STORAGE_BACKEND`): the files are downloaded once per machine into
  `RECSITE["ARTIFACTS_CACHE_DIR"]/<name>` (temporary directory + one `os.rename`, under
  an `fcntl` lock so the web workers of one machine download once) and every worker
  memory-maps the same files, sharing them through the page cache.

`ModelVersion.artifact_path` holds the artifact's name; an absolute local path (how
versions were recorded before this module) is still understood everywhere here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.files.storage.handler import InvalidStorageError

STORAGE_ALIAS = "artifacts"
MANIFEST = "manifest.json"  # written last; the engine's own manifest
CHUNK = 1 << 20

ARTIFACT_EXISTS = (
    "Artifact {name!r} is already published; published artifacts are immutable."
)
ARTIFACT_NOT_FOUND = "Artifact {name!r} is not in the artifacts storage."
ARTIFACT_INCOMPLETE = (
    "Artifact directory {path} has no manifest.json: not a complete artifact."
)
ARTIFACT_CORRUPT = "Artifact {name!r}: {file} does not match its manifest ({why})."
NAME_INVALID = (
    "Artifact names are one path segment of letters, digits, '-', '_' and '.'."
)
STORAGE_RENAMED = (
    "The storage saved {wanted!r} as {got!r}; it must not rename artifact files."
)


class ArtifactStoreError(Exception):
    """An artifact cannot be published, found or cached."""


# ------------------------------------------------------------------ the storage


def artifacts_storage() -> Storage:
    """`STORAGES["artifacts"]` when configured, else local files at ARTIFACTS_DIR."""
    try:
        return storages[STORAGE_ALIAS]
    except InvalidStorageError:
        return FileSystemStorage(location=settings.RECSITE["ARTIFACTS_DIR"])


def _local_root(storage: Storage) -> Path | None:
    """The directory of a local-file storage (artifacts used in place), else None."""
    if isinstance(storage, FileSystemStorage):
        return Path(storage.location)
    return None


def _cache_root() -> Path:
    default = Path(settings.RECSITE["ARTIFACTS_DIR"]).parent / "artifact-cache"
    return Path(settings.RECSITE.get("ARTIFACTS_CACHE_DIR") or default)


def _check_name(name: str) -> str:
    ok = (
        name
        and name not in (".", "..")
        and all(c.isalnum() or c in "-_." for c in name)
    )
    if not ok:
        raise ArtifactStoreError(NAME_INVALID)
    return name


def artifact_name(path_or_name: str) -> str:
    """The artifact name in a ModelVersion.artifact_path (a name or a local path)."""
    return Path(path_or_name).name if os.path.isabs(path_or_name) else path_or_name


# ------------------------------------------------------------------ publishing


def artifact_staging_dir(*, name: str) -> Path:
    """Where training should `save_artifacts` the artifact `name` (must not exist yet).

    For local storage that is the published place itself, so publishing copies nothing.
    """
    _check_name(name)
    root = _local_root(artifacts_storage())
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        return root / name
    staging = _cache_root() / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    return staging / f"{name}-{secrets.token_hex(4)}"


def _manifest_files(directory: Path) -> dict:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        return dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactStoreError(ARTIFACT_INCOMPLETE.format(path=directory)) from exc


def artifact_publish(*, source_dir: Path | str, name: str) -> str:
    """Publish a complete artifact directory as `name`; returns the name to record.

    Files go through the storage API, the manifest last. Refuses to overwrite.
    """
    _check_name(name)
    source = Path(source_dir)
    files = _manifest_files(source)
    storage = artifacts_storage()
    root = _local_root(storage)
    if root is not None and source.resolve() == (root / name).resolve():
        return name  # saved in place (save_artifacts published it atomically)
    if storage.exists(f"{name}/{MANIFEST}"):
        raise ArtifactStoreError(ARTIFACT_EXISTS.format(name=name))
    for filename in sorted(files) + [MANIFEST]:
        key = f"{name}/{filename}"
        if storage.exists(key):
            storage.delete(key)  # left by an interrupted publish of this name
        with open(source / filename, "rb") as fh:
            saved = storage.save(key, File(fh, name=filename))
        if saved != key:
            raise ArtifactStoreError(STORAGE_RENAMED.format(wanted=key, got=saved))
    if root is None:
        _adopt_into_cache(source, name)
    return name


def _adopt_into_cache(source: Path, name: str) -> None:
    """After a remote publish, keep the local copy as this machine's cache entry."""
    target = _cache_root() / name
    if target.exists() or not source.is_dir():
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    except OSError:
        pass  # another filesystem or a racing download: the cache fills on first use


def artifact_exists(*, name: str) -> bool:
    """True when the artifact is completely published (its manifest is stored)."""
    if os.path.isabs(name):
        return (Path(name) / MANIFEST).is_file()
    return artifacts_storage().exists(f"{_check_name(name)}/{MANIFEST}")


# ------------------------------------------------------------------ reading


def artifact_local_dir(*, name: str) -> Path:
    """A local directory holding the complete artifact, ready for `load_artifacts`.

    Local storage: the files themselves. Other storage: this machine's cached copy,
    downloaded once (one process downloads, the others wait for it).
    """
    if os.path.isabs(name):
        return Path(name)  # recorded as a local path
    _check_name(name)
    storage = artifacts_storage()
    root = _local_root(storage)
    if root is not None:
        return root / name
    cache = _cache_root()
    target = cache / name
    if (target / MANIFEST).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (target / MANIFEST).is_file():
                return target  # another worker finished the download meanwhile
            _download(storage, name, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _download(storage: Storage, name: str, target: Path) -> None:
    if not storage.exists(f"{name}/{MANIFEST}"):
        raise ArtifactStoreError(ARTIFACT_NOT_FOUND.format(name=name))
    with storage.open(f"{name}/{MANIFEST}", "rb") as fh:
        manifest_bytes = fh.read()
    files = json.loads(manifest_bytes)["files"]
    tmp = target.parent / f".{name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        for filename, meta in sorted(files.items()):
            digest = hashlib.sha256()
            size = 0
            with (
                storage.open(f"{name}/{filename}", "rb") as src,
                open(tmp / filename, "wb") as dst,
            ):
                for block in iter(lambda: src.read(CHUNK), b""):
                    dst.write(block)
                    digest.update(block)
                    size += len(block)
            expected = meta.get("sha256")
            if expected and digest.hexdigest() != expected:
                raise ArtifactStoreError(
                    ARTIFACT_CORRUPT.format(name=name, file=filename, why="sha256")
                )
            if "bytes" in meta and int(meta["bytes"]) != size:
                raise ArtifactStoreError(
                    ARTIFACT_CORRUPT.format(name=name, file=filename, why="size")
                )
        (tmp / MANIFEST).write_bytes(manifest_bytes)
        os.rename(tmp, target)  # one step: readers see nothing or everything
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------ retention


def artifact_delete(*, name: str) -> None:
    """Remove an artifact from the storage and from this machine's cache."""
    if os.path.isabs(name):
        shutil.rmtree(name, ignore_errors=True)
        return
    _check_name(name)
    storage = artifacts_storage()
    root = _local_root(storage)
    if root is not None:
        shutil.rmtree(root / name, ignore_errors=True)
    else:
        if storage.exists(f"{name}/{MANIFEST}"):
            storage.delete(f"{name}/{MANIFEST}")  # first: no longer "published"
        try:
            _, filenames = storage.listdir(name)
        except (OSError, NotImplementedError):
            filenames = []
        for filename in filenames:
            storage.delete(f"{name}/{filename}")
    shutil.rmtree(_cache_root() / name, ignore_errors=True)


def artifact_cache_prune(*, keep: Iterable[str]) -> list[str]:
    """Delete this machine's cached artifacts not named in `keep`; returns removed."""
    keep_names = {artifact_name(k) for k in keep}
    cache = _cache_root()
    removed = []
    if not cache.is_dir():
        return removed
    for entry in cache.iterdir():
        if entry.name.startswith(".") or entry.name in keep_names or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return sorted(removed)
