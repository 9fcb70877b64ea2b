"""Save/load a ModelBundle as npy + json (+ hnswlib index), published atomically.

Layout: manifest.json lists every file with its sha256, shape and dtype. A bundle is
written into a temporary sibling directory and published with one os.rename, so a
reader sees either no directory or a complete one; published versions are never
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .dataset import IdMap
from .features import ItemFeaturizer, UserFeaturizer
from .scoring import popularity_order
from .types import ModelBundle

FORMAT = "recsite-engine"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ANN_FILE = "ann.bin"

ERR_EXISTS = "artifact directory already exists (published versions are immutable)"
ERR_MISSING = "artifact file missing"
ERR_CORRUPT = "artifact file corrupt"
ERR_MANIFEST = "artifact manifest missing or invalid"


class ArtifactError(Exception):
    """Artifacts are missing, corrupt or incompatible."""


_DENSE = (
    "item_pks",
    "user_pks",
    "item_embeddings",
    "item_biases",
    "user_embeddings",
    "user_biases",
    "item_feature_embeddings",
    "item_feature_biases",
    "user_feature_embeddings",
    "user_feature_biases",
    "popularity",
    "trending",
    "label_feature_index",
)
_SPARSE = ("neighbors", "item_labels")
# written when present; bundles saved before they existed load without them
_OPTIONAL_DENSE = ("item_metadata_embeddings", "item_metadata_biases")
# lookup arrays derived from a field at save time (ModelBundle.derived), so that
# serving maps them instead of building private copies in every process; bundles
# saved before they existed load without them (serving computes them)
_DERIVED = {
    "item_pks": ("item_pks_order", "item_pks_sorted"),
    "user_pks": ("user_pks_order", "user_pks_sorted"),
    "popularity": ("popularity_order",),
}


def derive(name: str, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The derived arrays of a field (see _DERIVED), always from its current value."""
    if name == "popularity":
        return (popularity_order(values),)
    return IdMap.from_pks(values).sort_order()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_artifacts(bundle: ModelBundle, directory: str | Path) -> None:
    """Write the bundle to `directory` in one atomic step; refuse to overwrite."""
    target = Path(directory)
    if target.exists():
        raise ArtifactError(f"{ERR_EXISTS}: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        files: dict[str, dict] = {}
        arrays: dict[str, np.ndarray] = {
            name: np.ascontiguousarray(getattr(bundle, name)) for name in _DENSE
        }
        for name in _OPTIONAL_DENSE:
            if getattr(bundle, name) is not None:
                arrays[name] = np.ascontiguousarray(getattr(bundle, name))
        for name, parts in _DERIVED.items():
            # recomputed, never copied from bundle.derived: the field may have
            # been replaced since (benchmarks graft users onto a loaded model)
            for part, values in zip(parts, derive(name, arrays[name]), strict=True):
                arrays[part] = np.ascontiguousarray(values, dtype=np.int64)
        for name in _SPARSE:
            m = sp.csr_matrix(getattr(bundle, name))
            arrays[f"{name}_data"] = m.data.astype(np.float32)
            arrays[f"{name}_indices"] = m.indices.astype(np.int32)
            arrays[f"{name}_indptr"] = m.indptr.astype(np.int64)
        item_state, item_arrays = bundle.item_featurizer.to_state()
        for key, arr in item_arrays.items():
            arrays[f"item_featurizer_{key}"] = np.asarray(arr)
        for name, arr in arrays.items():
            path = tmp / f"{name}.npy"
            np.save(path, arr, allow_pickle=False)
            files[path.name] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
        documents = {
            "params.json": bundle.params,
            "blend.json": bundle.blend,
            "metrics.json": bundle.metrics,
            "featurizers.json": {
                "item": item_state,
                "user": bundle.user_featurizer.to_state(),
            },
            "labels.json": {"label_names": list(bundle.label_names)},
        }
        for name, doc in documents.items():
            (tmp / name).write_text(json.dumps(doc, indent=1, default=_json_default))
            files[name] = {}
        if bundle.ann_index is not None:
            bundle.ann_index.save_index(str(tmp / ANN_FILE))
            files[ANN_FILE] = {}
        for name, meta in files.items():
            meta["sha256"] = _sha256(tmp / name)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "n_items": bundle.n_items,
            "n_users": bundle.n_users,
            "dim": bundle.dim,
            "shapes": {name: list(getattr(bundle, name).shape) for name in _SPARSE},
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for path in tmp.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        try:
            # os.rename onto an existing non-empty directory fails: no overwrite race
            os.rename(tmp, target)
        except OSError as exc:
            raise ArtifactError(f"{ERR_EXISTS}: {target}") from exc
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def load_artifacts(
    directory: str | Path, mmap: bool = True, verify: bool = True
) -> ModelBundle:
    """Load (memory-mapping arrays when `mmap`) and validate a saved bundle."""
    root = Path(directory)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT:
            raise ValueError("unknown format")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{ERR_MANIFEST}: {root / MANIFEST}") from exc
    for name, meta in files.items():
        path = root / name
        if not path.is_file():
            raise ArtifactError(f"{ERR_MISSING}: {path}")
        if verify and _sha256(path) != meta.get("sha256"):
            raise ArtifactError(f"{ERR_CORRUPT}: {path} (checksum mismatch)")

    def array(name: str) -> np.ndarray:
        path = root / f"{name}.npy"
        meta = files.get(path.name)
        if meta is None:
            raise ArtifactError(f"{ERR_MISSING}: {path}")
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{ERR_CORRUPT}: {path}") from exc
        if list(arr.shape) != meta["shape"] or str(arr.dtype) != meta["dtype"]:
            raise ArtifactError(f"{ERR_CORRUPT}: {path} (shape/dtype mismatch)")
        # A plain ndarray over the same mapped pages: indexing an np.memmap goes
        # through its Python __getitem__ (≈5 µs each, dozens per request).
        return arr.view(np.ndarray) if isinstance(arr, np.memmap) else arr

    def document(name: str):
        try:
            return json.loads((root / name).read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{ERR_CORRUPT}: {root / name}") from exc

    try:
        dense = {name: array(name) for name in _DENSE}
        for name in _OPTIONAL_DENSE:
            if f"{name}.npy" in files:
                dense[name] = array(name)
        derived = {
            name: (dense[name], *(array(part) for part in parts))
            for name, parts in _DERIVED.items()
            if all(f"{part}.npy" in files for part in parts)
        }
        sparse = {}
        for name in _SPARSE:
            sparse[name] = sp.csr_matrix(
                (
                    array(f"{name}_data"),
                    array(f"{name}_indices"),
                    array(f"{name}_indptr"),
                ),
                shape=tuple(manifest["shapes"][name]),
            )
        feats = document("featurizers.json")
        item_arrays = {
            name[len("item_featurizer_") : -len(".npy")]: array(name[: -len(".npy")])
            for name in files
            if name.startswith("item_featurizer_")
        }
        item_fz = ItemFeaturizer.from_state(feats["item"], item_arrays)
        user_fz = UserFeaturizer.from_state(feats["user"])
        bundle = ModelBundle(
            **dense,
            **sparse,
            label_names=document("labels.json")["label_names"],
            item_featurizer=item_fz,
            user_featurizer=user_fz,
            params=document("params.json"),
            blend=document("blend.json"),
            metrics=document("metrics.json"),
            derived=derived,
        )
    except ArtifactError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ArtifactError(f"{ERR_CORRUPT}: {root} ({exc})") from exc
    _check_consistency(bundle, root)
    if ANN_FILE in files:
        from .ann import load_index

        try:
            bundle.ann_index = load_index(
                str(root / ANN_FILE),
                bundle.dim,
                bundle.n_items,
                int(bundle.params.get("ann_ef_search", 128)),
                ann_format=str(bundle.blend.get("ann_format", "ip")),
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise ArtifactError(f"{ERR_CORRUPT}: {root / ANN_FILE}") from exc
    return bundle


def _check_consistency(b: ModelBundle, root: Path) -> None:
    n_i, n_u, d = b.n_items, b.n_users, b.dim
    checks = [
        b.item_biases.shape == (n_i,),
        b.user_embeddings.shape[0] == n_u and b.user_embeddings.shape[1] == d,
        b.user_biases.shape == (n_u,),
        b.item_feature_embeddings.shape[1] == d,
        b.item_feature_embeddings.shape[0] == b.item_featurizer.n_features,
        b.user_feature_embeddings.shape[0] == b.user_featurizer.n_features,
        b.neighbors.shape == (n_i, n_i),
        b.popularity.shape == (n_i,),
        b.item_labels.shape == (n_i, len(b.label_names)),
        "alpha" in b.blend,
    ]
    for values, *parts in b.derived.values():
        checks.extend(part.shape == values.shape for part in parts)
    if b.item_metadata_embeddings is not None:
        checks.append(b.item_metadata_embeddings.shape == (n_i, d))
        checks.append(
            b.item_metadata_biases is not None
            and b.item_metadata_biases.shape == (n_i,)
        )
    if not all(checks):
        raise ArtifactError(f"{ERR_CORRUPT}: {root} (inconsistent shapes)")
