"""Serving-time scoring: one Recommender per process, read-only after __init__.

All request methods are pure functions of the (immutable) bundle and their
arguments, so one instance is safe to share between threads. Heavy arrays may be
memory-mapped. BLAS must run single-threaded in web workers (a 100k x 64 product
is too small to gain from threads and the threads fight between workers): call
`pin_single_blas_thread()` once per process or export OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .ann import query_vector
from .dataset import IdMap
from .scoring import (
    EPS,
    STATS_CHUNK,
    AugmentedStats,
    augmented_stats,
    effective_alpha,
    foldin_user,
    lightfm_z_params,
    popularity_order,
)
from .types import (
    ItemOverlay,
    ItemVector,
    ModelBundle,
    Reason,
    RecommendationResult,
    TrainConfig,
)

SIMILAR_USER_WEIGHT = 0.3  # weight of the user's own taste in similar_items
TRENDING_Z = 3.0  # trending score above which a popular item is "trending"
# New (overlay) items are placed by their rank among the catalog's metadata-only
# scores; above this many items the rank is counted on a fixed random sample
# (8192 x 64 floats: ~0.05 ms, where the whole of 100k items takes ~1.5 ms).
RANK_SAMPLE_SIZE = 8192
_EMPTY = np.zeros(0, dtype=np.int64)
SECONDS_PER_DAY = 86_400.0


def pin_single_blas_thread():
    """Limit BLAS to one thread for this process (returns the threadpoolctl limiter)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class _History:
    """A request's history: items and compressed weights; the rows after training."""

    items: np.ndarray
    weights: np.ndarray
    new_items: np.ndarray
    new_weights: np.ndarray
    mix: float  # share given to the rows newer than the training data


_NO_HISTORY = _History(_EMPTY, np.zeros(0), _EMPTY, np.zeros(0), 0.0)


@dataclass(frozen=True)
class _ItemItem:
    """Sparse item-item score vector of a history: columns, values, mean, std."""

    cols: np.ndarray
    values: np.ndarray
    mu: float
    sd: float
    hist: np.ndarray
    weights: np.ndarray

    def lookup(self, idx: np.ndarray) -> np.ndarray:
        """Values at item indices (0 where the history has no neighbour)."""
        if self.cols.size == 0:
            return np.zeros(idx.shape, dtype=np.float64)
        pos = np.minimum(np.searchsorted(self.cols, idx), self.cols.size - 1)
        return np.where(self.cols[pos] == idx, self.values[pos], 0.0)


class Recommender:
    """Scores items for users, sessions and items from one ModelBundle."""

    def __init__(self, bundle: ModelBundle) -> None:
        b = bundle
        self.bundle = b
        # Big arrays stay as the bundle holds them (memory-mapped when loaded
        # from artifacts, shared by every process through the page cache):
        # no private per-process copy of anything O(n_users) or O(n_items x dim).
        self._items = _id_map(b, "item_pks")
        self._users = _id_map(b, "user_pks")
        self._alpha = effective_alpha(float(b.blend.get("alpha", 0.5)))
        self._foldin_scale = float(b.blend.get("foldin_scale", 1.0))
        self._foldin_reg = float(b.blend.get("foldin_regularization", 1.0))
        # recency (serving): half-life of history weights, and when the training
        # data ends (rows after it are not in the trained user vectors)
        half_life = b.params.get(
            "recency_half_life_days", TrainConfig().recency_half_life_days
        )
        self._recency_half_life = float(half_life) if half_life else None
        trained_until = b.blend.get("trained_until")
        self._trained_until = float(trained_until) if trained_until else None
        self._recent_mix_rows = float(
            b.params.get("recent_mix_rows", TrainConfig().recent_mix_rows)
        )
        (
            (self._lf_mean, self._lf_cov),
            self._gram,
            self._norms,
            (self._cos_mean, self._cos_cov),
        ) = _catalog_stats(b.item_embeddings, b.item_biases)
        # the neighbour CSR in its stored dtypes (int32/float32 in artifacts);
        # requests widen only the rows they read
        self._nb_indptr = b.neighbors.indptr
        self._nb_indices = b.neighbors.indices
        self._nb_data = b.neighbors.data
        derived = _derived(b, "popularity")
        self._pop_order = (
            derived[0] if derived is not None else popularity_order(b.popularity)
        )
        self._label_emb = np.asarray(
            b.item_feature_embeddings[np.asarray(b.label_feature_index)], np.float32
        )
        self._label_index = {name: i for i, name in enumerate(b.label_names)}
        self._trend_cut = TRENDING_Z
        self._ann = b.ann_index
        self._ann_candidates = int(b.params.get("ann_candidates", 300))
        self._meta = b.item_metadata_embeddings
        if self._meta is not None:
            self._meta_biases = np.asarray(b.item_metadata_biases, np.float32)
            # cosine statistics over the catalog's metadata-only vectors, and the
            # LightFM score statistics of those vectors (overlay items are scored
            # against them: like with like)
            self._meta_norms, (self._meta_cos_mean, self._meta_cos_cov) = (
                _cosine_stats(self._meta)
            )
            self._meta_lf_mean, self._meta_lf_cov = augmented_stats(
                self._meta, self._meta_biases
            )
            n = b.n_items
            self._rank_sample = (
                np.sort(
                    np.random.default_rng(0).choice(n, RANK_SAMPLE_SIZE, replace=False)
                )
                if n > RANK_SAMPLE_SIZE
                else np.arange(n)
            )
            self._rank_meta = np.ascontiguousarray(self._meta[self._rank_sample])
            self._rank_meta_norms = self._meta_norms[self._rank_sample]
            self._rank_meta_biases = self._meta_biases[self._rank_sample]

    # ---- introspection
    @property
    def n_users(self) -> int:
        """Users with a trained vector."""
        return self.bundle.n_users

    @property
    def n_items(self) -> int:
        """Items in the trained catalog."""
        return self.bundle.n_items

    @property
    def item_pks(self) -> np.ndarray:
        """Catalog pks in model index order."""
        return self.bundle.item_pks

    def knows_user(self, user_pk: int) -> bool:
        """Whether the user has a trained vector."""
        return self._users.index_of(int(user_pk)) >= 0

    def knows_item(self, item_pk: int) -> bool:
        """Whether the item is in the trained catalog."""
        return self._items.index_of(int(item_pk)) >= 0

    # ---- public requests
    def recommend(
        self,
        *,
        user_pk: int | None,
        history_item_pks: np.ndarray | None = None,
        history_weights: np.ndarray | None = None,
        history_timestamps: np.ndarray | None = None,
        user_attributes: dict | None = None,
        k: int,
        exclude_item_pks: np.ndarray | None = None,
        allowed_item_pks: np.ndarray | None = None,
        overlay: ItemOverlay | None = None,
    ) -> RecommendationResult:
        """Top-k items for a user (known, folded in from history, cold, or nobody).

        `history_weights` (default 1 per row) are the rows' type weights (negative
        types subtract). With `history_timestamps` (unix seconds per row) a row
        counts 2^(-age / recency_half_life_days) of its weight (age from the
        newest row), and rows newer than the training data get a share
        mix = n / (n + recent_mix_rows) of the history (n = their decayed count):
        a known user's vector becomes (1 - mix) * trained + mix * fold-in of the
        new rows, and the new rows carry that share of the item-item weight, so
        five fresh actions move even a heavy user's list.
        """
        h = self._history(history_item_pks, history_weights, history_timestamps)
        hist, weights = h.items, h.weights
        u_idx = self._users.index_of(int(user_pk)) if user_pk is not None else -1
        if u_idx >= 0:
            uvec = np.asarray(self.bundle.user_embeddings[u_idx], dtype=np.float32)
            if h.mix > 0:
                # the trained vector knows nothing of the rows after training
                fresh = self._foldin(h.new_items, h.new_weights)
                uvec = ((1.0 - h.mix) * uvec + h.mix * fresh).astype(np.float32)
            strategy = "personalized"
        elif hist.size:
            uvec = self._foldin(hist, weights)
            strategy = "personalized"
        elif user_attributes:
            uvec = self._user_from_attributes(user_attributes)
            strategy = "cold_user" if uvec is not None else "popular"
        else:
            uvec, strategy = None, "popular"
        if strategy == "popular":
            return self.popular(
                k=k,
                exclude_item_pks=exclude_item_pks,
                allowed_item_pks=allowed_item_pks,
            )
        return self._rank(
            uvec,
            hist,
            weights,
            k,
            exclude_item_pks,
            allowed_item_pks,
            overlay,
            strategy,
        )

    def session(
        self,
        *,
        item_pks: np.ndarray,
        k: int,
        exclude_item_pks: np.ndarray | None = None,
        allowed_item_pks: np.ndarray | None = None,
        overlay: ItemOverlay | None = None,
    ) -> RecommendationResult:
        """Top-k items for an anonymous visitor from the items they just saw."""
        h = self._history(item_pks, None, None)
        hist, weights = h.items, h.weights
        if hist.size == 0:
            return self.popular(
                k=k,
                exclude_item_pks=exclude_item_pks,
                allowed_item_pks=allowed_item_pks,
            )
        uvec = self._foldin(hist, weights)
        return self._rank(
            uvec,
            hist,
            weights,
            k,
            exclude_item_pks,
            allowed_item_pks,
            overlay,
            "session",
        )

    def similar_items(
        self,
        *,
        item_pk: int | None = None,
        item_vector: np.ndarray | ItemVector | None = None,
        k: int,
        exclude_item_pks: np.ndarray | None = None,
        allowed_item_pks: np.ndarray | None = None,
        user_pk: int | None = None,
        overlay: ItemOverlay | None = None,
    ) -> RecommendationResult:
        """Items like a known item (embedding cosine + neighbours) or a new vector."""
        idx = self._items.index_of(int(item_pk)) if item_pk is not None else -1
        exclude = _as_pks(exclude_item_pks)
        if item_pk is not None:
            exclude = np.append(exclude, np.int64(item_pk))
        u_idx = self._users.index_of(int(user_pk)) if user_pk is not None else -1
        uvec = (
            np.asarray(self.bundle.user_embeddings[u_idx], np.float32)
            if u_idx >= 0
            else None
        )
        ref = int(item_pk) if item_pk is not None else None
        if idx < 0:
            if isinstance(item_vector, ItemVector):
                q = np.asarray(item_vector.vector, dtype=np.float32)
            elif item_vector is not None:
                q = np.asarray(item_vector, dtype=np.float32)
            elif (
                overlay is not None
                and item_pk is not None
                and item_pk in set(overlay.pks.tolist())
            ):
                q = overlay.vectors[int(np.flatnonzero(overlay.pks == item_pk)[0])]
            else:
                return self.popular(
                    k=k, exclude_item_pks=exclude, allowed_item_pks=allowed_item_pks
                )
            if self._meta is not None:
                return self._similar_to_new(
                    q, k, exclude, allowed_item_pks, uvec, overlay, ref
                )
            ii = None
        else:
            q = np.asarray(self.bundle.item_embeddings[idx], dtype=np.float32)
            ii = self._itemitem(np.array([idx]), np.array([1.0]))
        qn = q / (float(np.linalg.norm(q)) + EPS)
        cand = self._candidates(
            np.append(qn, 0.0).astype(np.float32), ii, allowed_item_pks, k, exclude
        )
        emb = self.bundle.item_embeddings
        cos_mu, cos_sd = lightfm_z_params(qn[None, :], self._cos_mean, self._cos_cov)

        def score(vecs: np.ndarray, norms: np.ndarray, biases: np.ndarray, ii_vals):
            z = ((vecs @ qn) / norms - cos_mu[0]) / cos_sd[0]
            if ii is not None:
                z = self._alpha * z + (1 - self._alpha) * (ii_vals - ii.mu) / ii.sd
            if uvec is not None:
                z = z + SIMILAR_USER_WEIGHT * self._user_z(uvec, vecs, biases)
            return z

        if cand is None:
            s = score(
                emb, self._norms, self.bundle.item_biases, _lookup_all(ii, self.n_items)
            )
        else:
            s = score(
                emb[cand],
                self._norms[cand],
                self.bundle.item_biases[cand],
                ii.lookup(cand) if ii is not None else 0.0,
            )
        o_scores = None
        if overlay is not None and len(overlay):
            if self._meta is not None and idx >= 0:
                o_scores = self._overlay_by_metadata_rank(idx, cand, s, overlay)
            else:
                # older bundles: trained-space cosine, neutral item-item term
                ov = np.asarray(overlay.vectors, np.float32)
                o_norms = np.linalg.norm(ov, axis=1) + EPS
                o_ii = ii.mu if ii is not None else 0.0
                o_scores = score(ov, o_norms, np.asarray(overlay.biases), o_ii)
        pks, scores, _ = self._select(
            cand, s, k, exclude, allowed_item_pks, overlay, o_scores
        )
        reasons = [Reason("similar_to", item_pk=ref) for _ in range(len(pks))]
        return RecommendationResult(pks, scores, reasons, "content")

    def _similar_to_new(
        self,
        q: np.ndarray,
        k: int,
        exclude: np.ndarray,
        allowed_item_pks: np.ndarray | None,
        uvec: np.ndarray | None,
        overlay: ItemOverlay | None,
        ref: int | None,
    ) -> RecommendationResult:
        """Items like a metadata-only vector, compared with the catalog's
        metadata-only vectors (like with like; a full scan, new items are rare)."""
        qn = np.asarray(q, np.float32) / (float(np.linalg.norm(q)) + EPS)
        mu, sd = lightfm_z_params(qn[None, :], self._meta_cos_mean, self._meta_cos_cov)
        mu, sd = float(mu[0]), float(sd[0])
        cand = None
        if allowed_item_pks is not None:
            a = self._items.indices(_as_pks(allowed_item_pks))
            cand = np.unique(a[a >= 0])
        sel = slice(None) if cand is None else cand
        s = ((self._meta[sel] @ qn) / self._meta_norms[sel] - mu) / sd
        if uvec is not None:
            s = s + SIMILAR_USER_WEIGHT * self._user_z(
                uvec, self.bundle.item_embeddings[sel], self.bundle.item_biases[sel]
            )
        o_scores = None
        if overlay is not None and len(overlay):
            ov = np.asarray(overlay.vectors, np.float32)
            o_scores = ((ov @ qn) / (np.linalg.norm(ov, axis=1) + EPS) - mu) / sd
            if uvec is not None:
                o_scores = o_scores + SIMILAR_USER_WEIGHT * self._user_z(
                    uvec, ov, np.asarray(overlay.biases), metadata=True
                )
        pks, scores, _ = self._select(
            cand, s, k, exclude, allowed_item_pks, overlay, o_scores
        )
        reasons = [Reason("similar_to", item_pk=ref) for _ in range(len(pks))]
        return RecommendationResult(pks, scores, reasons, "content")

    def _user_z(
        self,
        uvec: np.ndarray,
        vecs: np.ndarray,
        biases: np.ndarray,
        *,
        metadata: bool = False,
    ) -> np.ndarray:
        """A user's standardised LightFM scores of some items (metadata-only
        vectors are standardised over the catalog's metadata-only vectors)."""
        mean, cov = (
            (self._meta_lf_mean, self._meta_lf_cov)
            if metadata and self._meta is not None
            else (self._lf_mean, self._lf_cov)
        )
        mu, sd = lightfm_z_params(uvec[None, :], mean, cov)
        return ((vecs @ uvec + biases) - mu[0]) / sd[0]

    def _overlay_by_metadata_rank(
        self,
        idx: int,
        cand: np.ndarray | None,
        s: np.ndarray,
        overlay: ItemOverlay,
    ) -> np.ndarray:
        """Scores placing each overlay item where its metadata similarity ranks.

        A new item has no co-interactions and only a metadata vector, so it cannot
        be scored like a catalog item. It is compared with like instead: if r
        catalog items are more similar to the source *by metadata only* than the
        new item is, the new item takes the place of the r-th item of the
        catalog's own ranking (a metadata twin goes first).
        """
        src = np.arange(self.n_items) if cand is None else cand
        ref = np.where(src == idx, -np.inf, s)
        source_norm = float(np.linalg.norm(self._meta[idx]))
        ov = np.asarray(overlay.vectors, np.float32)
        if source_norm <= EPS:
            return _place_by_rank(ref, np.full(len(overlay), np.inf), np.zeros(len(ov)))
        m_src = np.asarray(self._meta[idx], np.float32) / source_norm
        c_cat = (self._rank_meta @ m_src) / self._rank_meta_norms
        c_cat[self._rank_sample == idx] = -np.inf
        c_o = np.clip((ov @ m_src) / (np.linalg.norm(ov, axis=1) + EPS), -1.0, 1.0)
        # catalog items strictly more similar (a tolerance for float noise)
        rank = self._catalog_rank(c_cat, c_o + 1e-5, ref.size)
        return _place_by_rank(ref, rank, np.maximum(c_o, 0.0))

    def _catalog_rank(
        self, sample_values: np.ndarray, thresholds: np.ndarray, limit: int
    ) -> np.ndarray:
        """Catalog items above each threshold, from values on the rank sample
        (exact for small catalogs; ranks past `limit` are not needed exactly)."""
        scale = self.n_items / max(sample_values.size, 1)
        sample_limit = int(np.ceil(limit / scale)) + 1
        return np.floor(
            _count_above(sample_values, thresholds, limit=sample_limit) * scale
        )

    def _overlay_for_user(
        self,
        uvec: np.ndarray,
        s: np.ndarray,
        overlay: ItemOverlay,
    ) -> np.ndarray:
        """Overlay scores in a user's list: placed where their metadata-only
        LightFM score ranks among the catalog's metadata-only scores."""
        ov = np.asarray(overlay.vectors, np.float32)
        o_lf = ov @ uvec + np.asarray(overlay.biases, np.float32)
        cat = self._rank_meta @ uvec + self._rank_meta_biases
        rank = self._catalog_rank(cat, o_lf, s.size)
        mu, sd = lightfm_z_params(uvec[None, :], self._meta_lf_mean, self._meta_lf_cov)
        return _place_by_rank(s, rank, ndtr((o_lf - mu[0]) / sd[0]))

    def popular(
        self,
        *,
        k: int,
        exclude_item_pks: np.ndarray | None = None,
        allowed_item_pks: np.ndarray | None = None,
    ) -> RecommendationResult:
        """Most popular items (with a trending reason where it applies)."""
        valid = np.ones(self.n_items, dtype=bool)
        if allowed_item_pks is not None:
            valid[:] = False
            a = self._items.indices(_as_pks(allowed_item_pks))
            valid[a[a >= 0]] = True
        ex = self._items.indices(_as_pks(exclude_item_pks))
        valid[ex[ex >= 0]] = False
        order = self._pop_order[valid[self._pop_order]][: max(k, 0)]
        trending = np.asarray(self.bundle.trending)[order]
        reasons = [
            Reason("trending" if t > self._trend_cut else "popular") for t in trending
        ]
        return RecommendationResult(
            self.bundle.item_pks[order].astype(np.int64),
            np.asarray(self.bundle.popularity)[order].astype(np.float32),
            reasons,
            "popular",
        )

    def item_vector_from_metadata(
        self,
        *,
        title: str = "",
        description: str = "",
        categories: list[str] | None = None,
        tags: list[str] | None = None,
        attributes: dict | None = None,
    ) -> ItemVector:
        """Embedding and bias of a NEW item from its metadata features."""
        row = self.bundle.item_featurizer.transform_new(
            title=title,
            description=description,
            categories=categories or (),
            tags=tags or (),
            attributes=attributes,
        )
        vec = np.asarray(row @ self.bundle.item_feature_embeddings, np.float32).ravel()
        bias = float(np.asarray(row @ self.bundle.item_feature_biases).ravel()[0])
        return ItemVector(vector=vec, bias=bias)

    def item_metadata_vector(self, *, item_pk: int) -> ItemVector | None:
        """Metadata-only vector of a catalog item (None: unknown item, or a
        bundle trained before these vectors were saved)."""
        idx = self._items.index_of(int(item_pk))
        if idx < 0 or self._meta is None:
            return None
        return ItemVector(
            vector=np.array(self._meta[idx], dtype=np.float32),
            bias=float(self.bundle.item_metadata_biases[idx]),
        )

    # ---- internals
    def _history(
        self,
        pks: np.ndarray | None,
        weights: np.ndarray | None,
        timestamps: np.ndarray | None,
    ) -> _History:
        """Known history items with log1p-compressed summed (recency-weighted)
        weights, and the part of it that is newer than the training data."""
        if pks is None or _as_pks(pks).size == 0:
            return _NO_HISTORY
        pks = _as_pks(pks)
        w = (
            np.ones(pks.size)
            if weights is None
            else np.asarray(weights, dtype=np.float64).ravel()
        )
        idx = self._items.indices(pks)
        ok = idx >= 0
        new = np.zeros(pks.size, dtype=bool)
        mix = 0.0
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.float64).ravel()
            if ts.shape != pks.shape:
                raise ValueError("history_timestamps must match history_item_pks")
            ts = np.where(np.isfinite(ts), ts, np.nan)
            if np.isfinite(ts[ok]).any():
                age = (np.nanmax(ts[ok]) - ts) / SECONDS_PER_DAY
                age = np.maximum(np.nan_to_num(age, nan=0.0), 0.0)
                decay = (
                    np.exp2(-age / self._recency_half_life)
                    if self._recency_half_life
                    else np.ones(age.size)
                )
                w = w * decay
                if self._trained_until is not None:
                    new = ok & (np.nan_to_num(ts, nan=-np.inf) > self._trained_until)
                    n_new = float(decay[new & (w > 0)].sum())
                    mix = n_new / (n_new + self._recent_mix_rows) if n_new else 0.0
        if mix > 0:
            # the new rows carry `mix` of the positive history weight
            pos = np.maximum(w, 0.0) * ok
            w_new, w_old = float(pos[new].sum()), float(pos[~new].sum())
            if w_old > 0:
                w = np.where(new, w * (mix / (1.0 - mix)) * (w_old / w_new), w)
        items, total = _aggregate(idx[ok], w[ok])
        if items.size == 0:
            return _NO_HISTORY
        new_items, new_total = _aggregate(idx[new], w[new])
        if new_items.size == 0:
            mix = 0.0
        return _History(
            items, np.log1p(total), new_items, np.log1p(new_total), float(mix)
        )

    def _foldin(self, hist: np.ndarray, weights: np.ndarray) -> np.ndarray:
        u = foldin_user(
            self.bundle.item_embeddings,
            hist,
            weights,
            self._gram,
            self.n_items,
            self._foldin_reg,
        )
        return (u * self._foldin_scale).astype(np.float32)

    def _user_from_attributes(self, attributes: dict) -> np.ndarray | None:
        row = self.bundle.user_featurizer.transform_new(attributes)
        if row.nnz == 0:
            return None
        return np.asarray(row @ self.bundle.user_feature_embeddings, np.float32).ravel()

    def _itemitem(self, hist: np.ndarray, weights: np.ndarray) -> _ItemItem | None:
        if hist.size == 0:
            return None
        cols, vals, lengths = self._neighbor_rows(hist)
        if cols.size == 0:
            return None
        vals = vals * np.repeat(weights, lengths)
        uniq, inv = np.unique(cols, return_inverse=True)
        summed = np.bincount(inv, weights=vals, minlength=uniq.size)
        n = self.n_items
        mu = summed.sum() / n
        sd = float(np.sqrt(max((summed**2).sum() / n - mu**2, 0.0))) + EPS
        return _ItemItem(uniq, summed, float(mu), sd, hist, weights)

    def _neighbor_rows(
        self, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns (int64) and values (float64) of some neighbour rows, row after
        row, and each row's length (the stored arrays may be int32/float32)."""
        starts = self._nb_indptr[rows].astype(np.int64)
        lengths = self._nb_indptr[rows + 1].astype(np.int64) - starts
        total = int(lengths.sum())
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        pos = np.arange(total) + offsets
        return (
            self._nb_indices[pos].astype(np.int64),
            self._nb_data[pos].astype(np.float64),
            lengths,
        )

    def _candidates(
        self,
        query: np.ndarray,
        ii: _ItemItem | None,
        allowed_item_pks: np.ndarray | None,
        k: int,
        exclude: np.ndarray,
    ) -> np.ndarray | None:
        """Item indices to score exactly, or None for the whole catalog."""
        if allowed_item_pks is not None:
            a = self._items.indices(_as_pks(allowed_item_pks))
            return np.unique(a[a >= 0])
        if self._ann is None:
            return None
        n_ann = min(self.n_items, max(self._ann_candidates, 3 * k + exclude.size))
        q = query_vector(query, self._ann.dim)
        labels, _ = self._ann.knn_query(q[None, :], k=n_ann, num_threads=1)
        parts = [labels[0].astype(np.int64)]
        if ii is not None:
            top_ii = ii.cols[np.argsort(-ii.values)[: max(self._ann_candidates, 3 * k)]]
            parts.append(top_ii)
        return np.unique(np.concatenate(parts))

    def _rank(
        self,
        uvec: np.ndarray,
        hist: np.ndarray,
        weights: np.ndarray,
        k: int,
        exclude_item_pks: np.ndarray | None,
        allowed_item_pks: np.ndarray | None,
        overlay: ItemOverlay | None,
        strategy: str,
    ) -> RecommendationResult:
        ii = self._itemitem(hist, weights)
        alpha = self._alpha if ii is not None else 1.0
        exclude = _as_pks(exclude_item_pks)
        lf_mu, lf_sd = lightfm_z_params(uvec[None, :], self._lf_mean, self._lf_cov)
        lf_mu, lf_sd = float(lf_mu[0]), float(lf_sd[0])
        emb, bias = self.bundle.item_embeddings, self.bundle.item_biases
        query = np.append(uvec, 1.0).astype(np.float32)
        cand = self._candidates(query, ii, allowed_item_pks, k, exclude)
        for attempt in range(2):
            if cand is None:
                lf = emb @ uvec + bias
                z_ii = (_lookup_all(ii, self.n_items) - ii.mu) / ii.sd if ii else 0.0
            else:
                lf = emb[cand] @ uvec + bias[cand]
                z_ii = (ii.lookup(cand) - ii.mu) / ii.sd if ii else 0.0
            s = alpha * (lf - lf_mu) / lf_sd + (1 - alpha) * z_ii
            o_scores = None
            if overlay is not None and len(overlay) and self._meta is not None:
                o_scores = self._overlay_for_user(uvec, s, overlay)
            elif overlay is not None and len(overlay):
                # older bundles: metadata vector against the trained catalog's
                # statistics, neutral item-item term (no co-interactions yet)
                o_lf = np.asarray(overlay.vectors, np.float32) @ uvec + np.asarray(
                    overlay.biases
                )
                o_scores = alpha * (o_lf - lf_mu) / lf_sd
            pks, scores, sources = self._select(
                cand, s, k, exclude, allowed_item_pks, overlay, o_scores
            )
            # the ANN pool can run dry under heavy exclusions: score everything
            if len(pks) >= k or cand is None or allowed_item_pks is not None:
                break
            cand = None
        reasons = self._reasons(pks, sources, uvec, ii, overlay)
        return RecommendationResult(pks, scores, reasons, strategy)

    def _select(
        self,
        cand: np.ndarray | None,
        s: np.ndarray,
        k: int,
        exclude: np.ndarray,
        allowed_item_pks: np.ndarray | None,
        overlay: ItemOverlay | None,
        o_scores: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k pks/scores over catalog candidates + overlay; sources >= 0 are
        catalog indices, < 0 are -(overlay position + 1)."""
        s = np.array(s, dtype=np.float64, copy=True)
        idx = np.arange(self.n_items) if cand is None else cand
        if exclude.size:
            ex = self._items.indices(exclude)
            ex = ex[ex >= 0]
            if cand is None:
                s[ex] = -np.inf
            else:
                s[np.isin(cand, ex)] = -np.inf
        sources = idx
        all_scores = s
        if o_scores is not None:
            ok = ~np.isin(overlay.pks, exclude)
            ok &= self._items.indices(overlay.pks) < 0  # trained copy wins
            if allowed_item_pks is not None:
                ok &= np.isin(overlay.pks, _as_pks(allowed_item_pks))
            o = np.where(ok, np.asarray(o_scores, np.float64), -np.inf)
            sources = np.concatenate([idx, -(np.arange(len(overlay)) + 1)])
            all_scores = np.concatenate([s, o])
        all_scores[~np.isfinite(all_scores)] = -np.inf
        n_valid = int(np.isfinite(all_scores).sum())
        kk = min(k, n_valid)
        if kk <= 0:
            return _EMPTY.copy(), np.zeros(0, np.float32), _EMPTY.copy()
        top = np.argpartition(-all_scores, kk - 1)[:kk]
        top = top[np.argsort(-all_scores[top], kind="stable")]
        src = sources[top]
        pks = np.where(
            src >= 0,
            self.bundle.item_pks[np.maximum(src, 0)],
            overlay.pks[np.maximum(-src - 1, 0)] if overlay is not None else 0,
        ).astype(np.int64)
        return pks, all_scores[top].astype(np.float32), src

    def _reasons(
        self,
        pks: np.ndarray,
        sources: np.ndarray,
        uvec: np.ndarray,
        ii: _ItemItem | None,
        overlay: ItemOverlay | None,
    ) -> list[Reason]:
        """because_you_interacted (top contributing history item), else best
        matching category/tag under the user's vector, else popular."""
        contributor = self._top_contributors(sources, ii)
        label_scores = self._label_emb @ uvec
        labels = self.bundle.item_labels
        out: list[Reason] = []
        for n, src in enumerate(sources):
            h = contributor[n]
            if h >= 0:
                out.append(
                    Reason(
                        "because_you_interacted", item_pk=int(self.bundle.item_pks[h])
                    )
                )
                continue
            if src >= 0:
                lab = labels.indices[labels.indptr[src] : labels.indptr[src + 1]]
            elif overlay is not None:
                o = -src - 1
                names = [f"category:{c.strip().lower()}" for c in overlay.categories[o]]
                names += [f"tag:{t.strip().lower()}" for t in overlay.tags[o]]
                lab = np.array(
                    [self._label_index[x] for x in names if x in self._label_index],
                    dtype=np.int64,
                )
            else:
                lab = _EMPTY
            if lab.size:
                best = int(lab[np.argmax(label_scores[lab])])
                if label_scores[best] > 0:
                    kind, _, name = self.bundle.label_names[best].partition(":")
                    out.append(
                        Reason(
                            "matches_category" if kind == "category" else "matches_tag",
                            label=name,
                        )
                    )
                    continue
            out.append(Reason("popular"))
        return out

    def _top_contributors(
        self, sources: np.ndarray, ii: _ItemItem | None
    ) -> np.ndarray:
        """For each source item, the history item with the largest neighbour weight."""
        out = np.full(len(sources), -1, dtype=np.int64)
        if ii is None or len(sources) == 0:
            return out
        cols, contrib, lengths = self._neighbor_rows(ii.hist)
        contrib = contrib * np.repeat(ii.weights, lengths)
        rows = np.repeat(ii.hist, lengths)
        wanted = np.isin(cols, sources[sources >= 0])
        cols, contrib, rows = cols[wanted], contrib[wanted], rows[wanted]
        if cols.size == 0:
            return out
        order = np.lexsort((contrib, cols))  # last of each column group = max
        cols, contrib, rows = cols[order], contrib[order], rows[order]
        last = np.r_[cols[1:] != cols[:-1], True]
        best_col, best_row, best_val = cols[last], rows[last], contrib[last]
        pos = np.searchsorted(best_col, sources)
        pos = np.minimum(pos, best_col.size - 1)
        hit = (sources >= 0) & (best_col[pos] == sources) & (best_val[pos] > 0)
        out[hit] = best_row[pos[hit]]
        return out


def _id_map(b: ModelBundle, name: str) -> IdMap:
    """The pk map of `b.<name>`, from the arrays saved with it when there are."""
    derived = _derived(b, name)
    if derived is not None:
        return IdMap.from_sorted(getattr(b, name), *derived)
    return IdMap.from_pks(getattr(b, name))


def _derived(b: ModelBundle, name: str) -> tuple[np.ndarray, ...] | None:
    """Arrays derived from `b.<name>` at save time, if it is still that array."""
    entry = b.derived.get(name)
    if entry is None or entry[0] is not getattr(b, name):
        return None
    return tuple(entry[1:])


def _chunks(n: int):
    for start in range(0, n, STATS_CHUNK):
        yield slice(start, min(start + STATS_CHUNK, n))


def _catalog_stats(emb: np.ndarray, biases: np.ndarray):
    """LightFM score statistics, Gram matrix / n, row norms (+EPS, float32) and
    cosine statistics of the item vectors, block by block (no float64 copy)."""
    n, d = emb.shape
    lf, cos = AugmentedStats(d), AugmentedStats(d)
    gram = np.zeros((d, d))
    norms = np.empty(n, dtype=np.float32)
    for rows in _chunks(n):
        e64 = np.asarray(emb[rows], dtype=np.float64)
        lf.add(e64, biases[rows])
        gram += e64.T @ e64
        block_norms = (np.linalg.norm(e64, axis=1) + EPS).astype(np.float32)
        norms[rows] = block_norms
        cos.add(
            (e64 / block_norms[:, None]).astype(np.float32),
            np.zeros(block_norms.size, dtype=np.float32),
        )
    return lf.result(), gram / max(n, 1), norms, cos.result()


def _cosine_stats(vectors: np.ndarray):
    """Row norms (floored at EPS, float32) and the statistics of the unit rows
    (zero rows stay zero), block by block."""
    n, d = vectors.shape
    cos = AugmentedStats(d)
    norms = np.empty(n, dtype=np.float32)
    for rows in _chunks(n):
        v64 = np.asarray(vectors[rows], dtype=np.float64)
        raw = np.linalg.norm(v64, axis=1)
        block_norms = np.maximum(raw, EPS).astype(np.float32)
        norms[rows] = block_norms
        unit = (v64 / block_norms[:, None]).astype(np.float32)
        unit[raw <= EPS] = 0.0
        cos.add(unit, np.zeros(block_norms.size, dtype=np.float32))
    return norms, cos.result()


def _aggregate(idx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed weight per item, positive totals only (negatives cancel/subtract)."""
    if idx.size == 0:
        return _EMPTY, np.zeros(0)
    uniq, inv = np.unique(idx, return_inverse=True)
    total = np.bincount(inv, weights=w, minlength=uniq.size)
    keep = total > 0
    return uniq[keep], total[keep]


def _count_above(values: np.ndarray, thresholds: np.ndarray, *, limit: int):
    """How many `values` exceed each threshold (exact below `limit`, else limit)."""
    n_top = int(min(max(limit, 1), values.size))
    top = np.sort(values[np.argpartition(-values, n_top - 1)[:n_top]])
    return (n_top - np.searchsorted(top, thresholds, side="right")).astype(np.float64)


def _place_by_rank(
    scores: np.ndarray, rank: np.ndarray, tiebreak: np.ndarray
) -> np.ndarray:
    """Scores that put extra items at given ranks of a scored list.

    rank r means "after the r best of `scores`"; `tiebreak` in [0, 1] orders extra
    items sharing a rank (higher first). Items beyond the list go below it.
    """
    ref = np.asarray(scores, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    t = np.clip(np.asarray(tiebreak, dtype=np.float64), 0.0, 1.0)
    if ref.size == 0:
        return t.copy()
    r = np.minimum(np.asarray(rank, dtype=np.float64), ref.size).astype(np.int64)
    # only the best max(r) + 1 scores matter: partial sort
    n_top = int(min(ref.size, r.max() + 1))
    floor = float(ref.min())
    top = ref[np.argpartition(-ref, n_top - 1)[:n_top]] if n_top < ref.size else ref
    top = -np.sort(-top)
    out = np.empty(r.size, dtype=np.float64)
    first = r == 0
    out[first] = top[0] + 1e-3 * (1.0 + t[first])
    mid = (r > 0) & (r < ref.size)
    hi, lo = top[r[mid] - 1], top[r[mid]]
    out[mid] = lo + (hi - lo) * (0.25 + 0.5 * t[mid])
    last = r >= ref.size
    out[last] = floor - 2.0 + t[last]
    return out


def _as_pks(pks) -> np.ndarray:
    if pks is None:
        return _EMPTY
    return np.asarray(pks, dtype=np.int64).ravel()


def _lookup_all(ii: _ItemItem | None, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    if ii is not None:
        out[ii.cols] = ii.values
    return out
