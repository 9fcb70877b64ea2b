"""Input and output dataclasses of the engine (no Django, numpy only)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

STRATEGIES = ("personalized", "cold_user", "popular", "session", "content")
REASON_KINDS = (
    "because_you_interacted",
    "similar_to",
    "matches_category",
    "matches_tag",
    "popular",
    "trending",
)


@dataclass(frozen=True)
class InteractionTypeSpec:
    """An interaction type and its confidence weight (negatives subtract)."""

    id: int
    name: str
    weight: float
    is_positive: bool = True


@dataclass(frozen=True)
class ItemMetadata:
    """The whole catalog, in one order; `ids` are DB primary keys."""

    ids: np.ndarray
    external_ids: list[str]
    titles: list[str]
    descriptions: list[str]
    categories: list[list[str]]
    tags: list[list[str]]
    attributes: list[dict]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class UserMetadata:
    """All users, in one order; `ids` are DB primary keys."""

    ids: np.ndarray
    external_ids: list[str]
    attributes: list[dict]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TrainingData:
    """One snapshot of interactions plus the catalog and user metadata."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    type_ids: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray
    types: tuple[InteractionTypeSpec, ...]
    items: ItemMetadata
    users: UserMetadata


@dataclass(frozen=True)
class TrainConfig:
    """Training configuration; the defaults are the product's default setup."""

    # LightFM hybrid
    components: int = 32
    learning_rate: float = 0.05
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_epochs: int = 60
    loss: str = "warp"
    max_sampled: int = 10
    early_stopping_patience: int = 2  # evaluations without improvement
    eval_every_epochs: int = 5
    # features: identity keeps this share of a row's weight (metadata the rest)
    item_identity_share: float = 0.5
    user_identity_share: float = 0.5
    text_max_features: int = 5000
    text_max_words_per_item: int = 12  # strongest tf-idf words kept per item
    numeric_buckets: int = 8
    max_values_per_attribute: int = 50
    # hyper-parameter search
    search: bool = True
    time_budget_s: float = 300.0
    search_max_trials: int = 8
    search_components: tuple[int, ...] = (32, 64)
    search_learning_rates: tuple[float, ...] = (0.05, 0.025)
    search_alphas: tuple[float, ...] = (1e-6, 1e-4)
    # validation split
    seed: int = 42
    # LightFM threads: 0 = automatic (every core when the data has at least
    # `parallel_min_pairs` user-item pairs, else 1). More than one thread is much
    # faster but LightFM's Hogwild SGD is then NOT bit-reproducible; `deterministic`
    # forces one thread (and a single-threaded hnswlib build) whatever the size.
    num_threads: int = 0
    deterministic: bool = False
    parallel_min_pairs: int = 200_000
    validation_fraction: float = 0.2
    cold_item_fraction: float = 0.05
    max_cold_items: int = 1000
    max_validation_users: int = 3000
    # when the holdout is at most this share of the pairs (large data: only the
    # sampled validation users and cold items are held out) the final model
    # continues the validation model with `catchup_passes` passes over the
    # held-out pairs only (0 = as many as the chosen epochs) instead of being
    # refitted from scratch
    continue_max_holdout_share: float = 0.05
    catchup_passes: int = 0
    # confidence matrix
    half_life_days: float | None = None
    # item-item model
    ease_max_items: int = 10_000
    # EASE lambda = factor * mean item popularity (diagonal of X^T X): the optimum
    # scales with the data, so the grid is relative. On binary MovieLens-100k the
    # best lambda is a few hundred (mean popularity ~45 in a 75% split: factors
    # ~4-12), so the grid is finer there; tried from the default outwards so a
    # short time budget keeps the likeliest values
    ease_lambda_factors: tuple[float, ...] = (
        0.5,
        1.0,
        2.0,
        3.0,
        4.0,
        6.0,
        8.0,
        12.0,
        16.0,
        32.0,
    )
    ease_lambda_factor: float = 4.0  # used when search is off
    knn_shrink: float = 10.0
    neighbors_k: int = 200  # cosine model (large catalogs)
    ease_neighbors_k: int = 500  # EASE pruning: 200 lost ~3% P@10, 500 keeps more
    # blend: score = alpha * z(lightfm) + (1 - alpha) * z(item-item)
    blend_alphas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
    blend_alpha: float = 0.3  # used when search is off
    # serving
    ann_min_items: int = 20_000
    # measured at 100k items x 64 dims: recall@50 0.98, 0.05 ms per query, 2 s
    # build on 2 threads (M=16/ef 128 gave 0.87); ~53 MB per process at 100k
    ann_ef_construction: int = 100
    ann_m: int = 32
    ann_ef_search: int = 100
    # 100: the top-10 and top-50 of recommend() matched an exact scoring of the
    # whole catalog for 999 of 1,000 users at 100k items x 64 dims (300: 1,000),
    # ~0.3 ms less per request; recommend() asks max(this, 3k + excluded)
    ann_candidates: int = 100
    foldin_regularization: float = 1.0
    # serving: history rows lose half their weight every this many days (when
    # the request passes timestamps); None = no decay
    recency_half_life_days: float | None = 30.0
    # serving: n history rows newer than the training data get the share
    # n / (n + recent_mix_rows) of a known user's vector and item-item weight
    recent_mix_rows: float = 10.0
    trending_window_days: float = 7.0

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from `as_dict()` output; unknown keys are ignored."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in data.items():
            if key not in names:
                continue
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Reason:
    """Why an item was recommended."""

    kind: str
    item_pk: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class RecommendationResult:
    """Ranked item pks (best first), their scores, one reason each, the strategy."""

    item_pks: np.ndarray
    scores: np.ndarray
    reasons: list[Reason]
    strategy: str

    def __len__(self) -> int:
        return len(self.item_pks)


@dataclass(frozen=True)
class ItemVector:
    """LightFM embedding and bias of an item built from its metadata."""

    vector: np.ndarray
    bias: float


@dataclass(frozen=True)
class ItemOverlay:
    """Items created after training, offered as extra candidates at serving time."""

    pks: np.ndarray
    vectors: np.ndarray
    biases: np.ndarray
    categories: list[list[str]] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_vectors(
        cls,
        pks: np.ndarray | list[int],
        vectors: list[ItemVector],
        categories: list[list[str]] | None = None,
        tags: list[list[str]] | None = None,
    ) -> ItemOverlay:
        """Build an overlay from `ItemVector`s (one per pk)."""
        pks_arr = np.asarray(pks, dtype=np.int64)
        if len(vectors):
            mat = np.stack([np.asarray(v.vector, dtype=np.float32) for v in vectors])
        else:
            mat = np.zeros((0, 0), dtype=np.float32)
        biases = np.asarray([v.bias for v in vectors], dtype=np.float32)
        n = len(pks_arr)
        return cls(
            pks=pks_arr,
            vectors=mat,
            biases=biases,
            categories=list(categories) if categories is not None else [[]] * n,
            tags=list(tags) if tags is not None else [[]] * n,
        )

    def __len__(self) -> int:
        return len(self.pks)


@dataclass
class ModelBundle:
    """Everything serving needs; arrays may be memory-mapped (read-only)."""

    item_pks: np.ndarray  # int64 [n_items], index order
    user_pks: np.ndarray  # int64 [n_users]
    item_embeddings: np.ndarray  # float32 [n_items, d]
    item_biases: np.ndarray  # float32 [n_items]
    user_embeddings: np.ndarray  # float32 [n_users, d]
    user_biases: np.ndarray  # float32 [n_users]
    item_feature_embeddings: np.ndarray  # float32 [n_item_features, d]
    item_feature_biases: np.ndarray  # float32 [n_item_features]
    user_feature_embeddings: np.ndarray  # float32 [n_user_features, d]
    user_feature_biases: np.ndarray  # float32 [n_user_features]
    neighbors: sp.csr_matrix  # float32 [n_items, n_items], top-k per row
    popularity: np.ndarray  # float32 [n_items]
    trending: np.ndarray  # float32 [n_items]
    item_labels: sp.csr_matrix  # bool-ish [n_items, n_labels] (categories+tags)
    label_names: list[str]  # "category:<x>" / "tag:<x>"
    label_feature_index: np.ndarray  # int64 [n_labels] -> item feature column
    item_featurizer: Any  # features.ItemFeaturizer
    user_featurizer: Any  # features.UserFeaturizer
    params: dict = field(default_factory=dict)  # TrainConfig.as_dict() + chosen
    blend: dict = field(default_factory=dict)  # alpha, foldin_scale, ...
    metrics: dict = field(default_factory=dict)
    ann_index: Any = None  # hnswlib.Index or None
    # metadata-only view of every catalog item (its feature row without the
    # identity column, as `item_vector_from_metadata` would build it), so items
    # created after training are compared with like; None in older bundles
    item_metadata_embeddings: np.ndarray | None = None  # float32 [n_items, d]
    item_metadata_biases: np.ndarray | None = None  # float32 [n_items]
    # lookup arrays computed at save time and memory-mapped with the bundle, so
    # serving processes need no private copies: "<field>" -> (that field's array,
    # *derived arrays). Used only while the field still holds that very array
    # (a bundle whose pks are replaced in memory falls back to computing them).
    derived: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        """Number of catalog items known to the model."""
        return int(self.item_pks.shape[0])

    @property
    def n_users(self) -> int:
        """Number of users known to the model."""
        return int(self.user_pks.shape[0])

    @property
    def dim(self) -> int:
        """LightFM embedding dimension."""
        return int(self.item_embeddings.shape[1])
