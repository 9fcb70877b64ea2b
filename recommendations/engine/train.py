"""Training: confidence matrix -> validation split -> search -> final fit -> bundle.

Model = LightFM hybrid (identity + metadata features, WARP) blended with a sparse
top-k item-item model (EASE below `ease_max_items`, shrunk cosine above). The
hyper-parameters (LightFM components/learning rate/regularisation/epochs, EASE
lambda, blend alpha) are chosen on a per-user random holdout; a few items are held
out entirely to measure cold start from metadata.

Cost at scale. Only a sample of users (at most `max_validation_users`, and at most
`MAX_EVAL_CELLS` scored user x item cells) loses items to the holdout, and at most
`max_cold_items` items are held out, so on large data the validation model has seen
almost everything: the final model then *continues* it with `catchup_passes`
over the held-out pairs only instead of refitting from scratch
(`continue_max_holdout_share`; the held-out pairs are passed over as many times
as the rest, which costs a few per cent of one epoch).
Small data (where the holdout is a large share) is refitted from scratch with the
chosen epochs. LightFM runs on every core for large data unless `deterministic`
(multi-threaded LightFM is Hogwild SGD: fast, but not bit-reproducible).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from .dataset import build_matrix, split_per_user
from .evaluate import evaluate
from .features import ItemFeaturizer, UserFeaturizer, metadata_only_rows
from .itemitem import cosine_neighbors, ease_from_gram, gram, prune_dense_top_k
from .scoring import (
    augmented_stats,
    blend_dense,
    foldin_user,
    itemitem_z_params,
    lightfm_z_params,
)
from .types import ModelBundle, TrainConfig, TrainingData

Progress = Callable[[str, float], None]
SECONDS_PER_DAY = 86_400.0
MAX_EVAL_CELLS = 30_000_000  # validation users x items scored per evaluation
EVAL_CHUNK_CELLS = 8_000_000  # users x items scored at once (memory)
AUC_MAX_CELLS = 10_000_000  # users x items sorted for the AUC


@dataclass
class TrainResult:
    """Output of `train_model`."""

    bundle: ModelBundle
    params: dict
    metrics: dict
    data_stats: dict
    timings: dict = field(default_factory=dict)


class _Progress:
    """Maps stage-local fractions onto one overall 0..1 bar."""

    STAGES: ClassVar[
        dict[str, tuple[float, float]]
    ] = {  # stage -> (start, end) of the overall bar
        "prepare": (0.0, 0.05),
        "item_item_search": (0.05, 0.1),
        "lightfm_search": (0.1, 0.7),
        "blend_search": (0.7, 0.75),
        "refit": (0.75, 0.95),
        "artifacts": (0.95, 1.0),
    }

    def __init__(self, callback: Progress | None) -> None:
        self.callback = callback
        self.last = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        lo, hi = self.STAGES.get(stage, (self.last, self.last))
        overall = max(self.last, lo + (hi - lo) * min(max(fraction, 0.0), 1.0))
        self.last = overall
        if self.callback is not None:
            self.callback(stage, float(overall))


class _Clock:
    """Accumulates wall time per named part (a part may be entered many times)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t0


def lightfm_threads(config: TrainConfig, n_pairs: int) -> int:
    """LightFM threads: explicit `num_threads`, else 1 for small or deterministic
    runs and every available core for large data."""
    if config.num_threads and config.num_threads > 0:
        return int(config.num_threads)
    if config.deterministic or n_pairs < config.parallel_min_pairs:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores)


def _lightfm(config: TrainConfig, components: int, lr: float, alpha: float, seed: int):
    return LightFM(
        no_components=components,
        learning_rate=lr,
        loss=config.loss,
        item_alpha=alpha,
        user_alpha=alpha,
        max_sampled=config.max_sampled,
        random_state=np.random.RandomState(seed),
    )


def _interactions(
    x: sp.csr_matrix, mean: float | None = None
) -> tuple[sp.coo_matrix, sp.coo_matrix]:
    """Binary interactions and sample weights (same order) for LightFM, scaled
    to mean 1 (or by a given `mean`, e.g. the whole matrix's for a part of it)."""
    coo = x.tocoo()
    ones = sp.coo_matrix(
        (np.ones(coo.nnz, np.float32), (coo.row, coo.col)), shape=x.shape
    )
    if mean is None:
        mean = float(coo.data.mean()) if coo.nnz else 1.0
    w = coo.data / max(mean, 1e-9) if coo.nnz else coo.data
    weights = sp.coo_matrix((w.astype(np.float32), (coo.row, coo.col)), shape=x.shape)
    return ones, weights


def _representations(model, item_features, user_features):
    ib, ie = model.get_item_representations(item_features)
    ub, ue = model.get_user_representations(user_features)
    return (
        ie.astype(np.float32),
        ib.astype(np.float32),
        ue.astype(np.float32),
        ub.astype(np.float32),
    )


def _trial_grid(config: TrainConfig) -> list[tuple[int, float, float]]:
    """Fixed search order: the default first, then one change at a time."""
    default = (config.components, config.learning_rate, config.item_alpha)
    grid = [default]
    for c in config.search_components:
        grid.append((c, default[1], default[2]))
    for lr in config.search_learning_rates:
        grid.append((default[0], lr, default[2]))
    for a in config.search_alphas:
        grid.append((default[0], default[1], a))
    out = []
    for g in grid:
        if g not in out:
            out.append(g)
    return out


@dataclass
class _Split:
    """The validation split: training part, holdout, who and what is evaluated."""

    train: sp.csr_matrix  # x without cold items and without the holdout
    test: sp.csr_matrix  # per-user holdout of the validation users
    val_users: np.ndarray  # users evaluated on `test`
    cold_items: np.ndarray  # items held out entirely
    cold_test: sp.csr_matrix  # their interactions (full width)
    cold_users: np.ndarray  # users evaluated on `cold_test`
    holdout_share: float  # share of x's pairs missing from `train`


def _validation_split(
    x: sp.csr_matrix, config: TrainConfig, rng: np.random.Generator
) -> _Split:
    n_users, n_items = x.shape
    item_counts = np.bincount(x.indices, minlength=n_items)
    active_items = np.flatnonzero(item_counts > 0)
    n_cold = min(
        int(len(active_items) * config.cold_item_fraction), config.max_cold_items
    )
    cold_items = (
        np.sort(rng.choice(active_items, size=n_cold, replace=False))
        if n_cold >= 5
        else np.zeros(0, dtype=np.int64)
    )
    cold_mask = np.zeros(n_items, dtype=bool)
    cold_mask[cold_items] = True
    in_cold = cold_mask[x.indices]
    rows = np.repeat(np.arange(n_users), np.diff(x.indptr))
    cold_test = sp.csr_matrix(
        (x.data[in_cold], (rows[in_cold], x.indices[in_cold])), shape=x.shape
    )
    warm = sp.csr_matrix(
        (x.data[~in_cold], (rows[~in_cold], x.indices[~in_cold])), shape=x.shape
    )
    # only a sample of users is evaluated, so only they lose items
    cap = int(min(config.max_validation_users, MAX_EVAL_CELLS // max(n_items, 1)))
    cap = max(cap, 50)
    eligible = np.flatnonzero(np.diff(warm.indptr) >= 2)
    if eligible.size > cap:
        eligible = np.sort(rng.choice(eligible, size=cap, replace=False))
    train, test = split_per_user(
        warm, fraction=config.validation_fraction, seed=config.seed, users=eligible
    )
    val_users = np.flatnonzero(np.diff(test.indptr) > 0)
    cold_users = np.flatnonzero(np.diff(cold_test.indptr) > 0)
    if cold_users.size > cap:
        cold_users = np.sort(rng.choice(cold_users, size=cap, replace=False))
    return _Split(
        train=train,
        test=test,
        val_users=val_users,
        cold_items=cold_items,
        cold_test=cold_test,
        cold_users=cold_users,
        holdout_share=float((test.nnz + cold_test.nnz) / max(x.nnz, 1)),
    )


class _EvalUsers:
    """User vectors of the evaluated users only (scorers get full user indices)."""

    def __init__(self, users: np.ndarray, n_users: int) -> None:
        self.users = users
        self.position = np.full(n_users, -1, dtype=np.int64)
        self.position[users] = np.arange(users.size)

    def vectors(self, model, f_users: sp.csr_matrix) -> np.ndarray:
        _, ue = model.get_user_representations(f_users[self.users])
        return ue.astype(np.float32)


def _eval_chunk(n_items: int) -> int:
    return int(max(16, min(256, EVAL_CHUNK_CELLS // max(n_items, 1))))


def _lf_scorer(item_emb, item_b, user_vecs, position):
    def scorer(users: np.ndarray) -> np.ndarray:
        return user_vecs[position[users]] @ item_emb.T + item_b[None, :]

    return scorer


def _blend_parts(ue, position, ie, ib, history, neighbors, users_sorted, chunk):
    """LightFM and item-item scores of the evaluated users with their z-params,
    computed once per chunk and re-blended for every alpha."""
    mean, cov = augmented_stats(ie, ib)
    n_items = ie.shape[0]
    parts = []
    for start in range(0, users_sorted.size, chunk):
        users = users_sorted[start : start + chunk]
        u = ue[position[users]]
        lf = u @ ie.T + ib[None, :]
        lf_mu, lf_sd = lightfm_z_params(u, mean, cov)
        ii = np.asarray((history[users] @ neighbors).toarray())
        ii_mu, ii_sd = itemitem_z_params(ii.sum(axis=1), (ii**2).sum(axis=1), n_items)
        parts.append((lf, lf_mu, lf_sd, ii, ii_mu, ii_sd))
    return parts


def _cached_scorer(cached: list, users: np.ndarray, alpha: float, chunk: int):
    """Re-blend precomputed parts (evaluated users in chunks) for one alpha."""
    position = {int(u): i for i, u in enumerate(users)}

    def scorer(batch: np.ndarray) -> np.ndarray:
        first = position[int(batch[0])]
        return blend_dense(*cached[first // chunk], alpha)

    return scorer


def train_model(
    data: TrainingData,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Fit the hybrid + item-item blend; see the module docstring."""
    config = config or TrainConfig()
    report = _Progress(progress)
    clock = _Clock()
    t_start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    report("prepare", 0.0)

    with clock("prepare_s"):
        im = build_matrix(data, half_life_days=config.half_life_days)
        x = im.matrix
        n_users, n_items = x.shape
        item_fz, f_items = ItemFeaturizer.fit_transform(
            data.items,
            identity_share=config.item_identity_share,
            text_max_features=config.text_max_features,
            text_max_words=config.text_max_words_per_item,
            numeric_buckets=config.numeric_buckets,
            max_values_per_attribute=config.max_values_per_attribute,
        )
        user_fz = UserFeaturizer.fit(
            data.users.attributes,
            identity_share=config.user_identity_share,
            numeric_buckets=config.numeric_buckets,
            max_values_per_attribute=config.max_values_per_attribute,
        )
        f_users = user_fz.transform(data.users.attributes)
    report("prepare", 0.6)
    threads = lightfm_threads(config, int(x.nnz))
    data_stats = {
        "n_users": n_users,
        "n_items": n_items,
        "n_interaction_rows": len(data.user_ids),
        "n_rows_used": im.n_rows_used,
        "n_rows_dropped": im.n_rows_dropped,
        "n_user_item_pairs": int(x.nnz),
        "n_users_with_interactions": int((np.diff(x.indptr) > 0).sum()),
        "n_items_with_interactions": int(
            (np.bincount(x.indices, minlength=n_items) > 0).sum()
        ),
        "n_item_features": int(item_fz.n_features),
        "n_user_features": int(user_fz.n_features),
        "density": float(x.nnz / max(n_users * n_items, 1)),
    }

    with clock("prepare_s"):
        split = _validation_split(x, config, rng)
    train_v, val_v, val_users = split.train, split.test, split.val_users
    cold_items, cold_users = split.cold_items, split.cold_users
    eval_users = _EvalUsers(np.union1d(val_users, cold_users), n_users)
    chunk = _eval_chunk(n_items)
    # AUC sorts whole rows: cap its users by scored cells
    auc_users = int(max(50, min(1000, AUC_MAX_CELLS // max(n_items, 1))))
    report("prepare", 1.0)
    deadline = t_start + config.time_budget_s
    do_search = config.search and val_users.size > 0
    # little held out: continue the validation model instead of refitting
    continue_final = split.holdout_share <= config.continue_max_holdout_share

    # ---- item-item model (lambda on validation for EASE)
    use_ease = n_items <= config.ease_max_items
    ii_choice: dict = {"model": "ease" if use_ease else "cosine"}
    if use_ease:
        with clock("item_item_s"):
            g = gram(train_v)
            diag = np.diag(g)
            diag_mean = float(diag[diag > 0].mean()) if np.any(diag > 0) else 1.0
        factors = list(config.ease_lambda_factors) if do_search else []
        if config.ease_lambda_factor not in factors:
            factors = [config.ease_lambda_factor] + factors
        best = (-1.0, config.ease_lambda_factor)
        ii_by_factor: dict[float, sp.csr_matrix] = {}
        default = config.ease_lambda_factor
        order = sorted(factors, key=lambda f: (abs(np.log(f / default)), f))
        for n, f in enumerate(order):
            if n and time.perf_counter() > deadline:
                break
            with clock("item_item_s"):
                nb = prune_dense_top_k(
                    ease_from_gram(g, f * diag_mean), config.ease_neighbors_k
                )
            ii_by_factor[f] = nb
            if not do_search:
                best = (0.0, f)
                break
            with clock("evaluate_s"):
                p = evaluate(
                    _ii_scorer(train_v, nb),
                    train_v,
                    val_v,
                    users=val_users,
                    auc_max_users=0,
                    chunk_size=chunk,
                )["precision_at_10"]
            if p > best[0]:
                best = (p, f)
            report("item_item_search", (n + 1) / len(factors))
        ii_choice["lambda_factor"] = best[1]
        ii_valid = ii_by_factor[best[1]]
        del g, ii_by_factor
    else:
        ii_choice["shrink"] = config.knn_shrink
        with clock("item_item_s"):
            # validation only scores the evaluated users: their items' rows suffice
            seen = np.unique(train_v[val_users].indices)
            ii_valid = cosine_neighbors(
                train_v, k=config.neighbors_k, shrink=config.knn_shrink, rows=seen
            )
    report("item_item_search", 1.0)

    # ---- LightFM search with early stopping on validation precision@10
    ones_v, weights_v = _interactions(train_v)
    trials = _trial_grid(config) if do_search else [_trial_grid(config)[0]]
    trials = trials[: max(1, config.search_max_trials)]
    trial_log = []
    best_lf: dict = {"precision": -1.0}
    model = None
    for t_i, (comp, lr, alpha) in enumerate(trials):
        if t_i and time.perf_counter() > deadline:
            break
        model = _lightfm(config, comp, lr, alpha, config.seed)
        best_trial: dict = {"precision": -1.0, "epochs": 0}
        stale = 0
        for epoch in range(1, config.max_epochs + 1):
            with clock("lightfm_fit_s"):
                model.fit_partial(
                    ones_v,
                    user_features=f_users,
                    item_features=f_items,
                    sample_weight=weights_v,
                    epochs=1,
                    num_threads=threads,
                )
            report("lightfm_search", (t_i + epoch / config.max_epochs) / len(trials))
            last = epoch == config.max_epochs
            if not do_search:
                continue
            if epoch % config.eval_every_epochs and not last:
                continue
            with clock("evaluate_s"):
                ib, ie = model.get_item_representations(f_items)
                ie, ib = ie.astype(np.float32), ib.astype(np.float32)
                ue = eval_users.vectors(model, f_users)
                p = evaluate(
                    _lf_scorer(ie, ib, ue, eval_users.position),
                    train_v,
                    val_v,
                    users=val_users,
                    auc_max_users=0,
                    chunk_size=chunk,
                )["precision_at_10"]
            if p > best_trial["precision"] + 1e-4:
                best_trial = {
                    "precision": p,
                    "epochs": epoch,
                    "reps": (ie, ib, ue),
                    "feature_embeddings": (
                        model.item_embeddings.copy(),
                        model.item_biases.copy(),
                    ),
                }
                if continue_final:
                    # the final model continues from here (cheaper than a refit)
                    best_trial["model"] = copy.deepcopy(model)
                stale = 0
            else:
                stale += 1
            if (
                stale >= config.early_stopping_patience
                or time.perf_counter() > deadline
            ):
                break
        if not do_search:
            with clock("evaluate_s"):
                ib, ie = model.get_item_representations(f_items)
                ue = eval_users.vectors(model, f_users)
            best_trial = {
                "precision": float("nan"),
                "epochs": config.max_epochs,
                "reps": (ie.astype(np.float32), ib.astype(np.float32), ue),
                "feature_embeddings": (model.item_embeddings, model.item_biases),
                "model": model,
            }
        trial_log.append(
            {
                "components": comp,
                "learning_rate": lr,
                "alpha": alpha,
                "epochs": best_trial["epochs"],
                "precision_at_10": best_trial["precision"],
            }
        )
        if best_trial["precision"] > best_lf["precision"] or "reps" not in best_lf:
            best_lf = dict(best_trial, components=comp, learning_rate=lr, alpha=alpha)
    del model
    report("lightfm_search", 1.0)

    # ---- blend weight on validation, then metrics of the chosen blend
    ie_v, ib_v, ue_v = best_lf["reps"]
    alpha_choice = config.blend_alpha
    blend_log = {}
    metrics: dict = {}
    if val_users.size:
        with clock("evaluate_s"):
            cached = _blend_parts(
                ue_v,
                eval_users.position,
                ie_v,
                ib_v,
                train_v,
                ii_valid,
                val_users,
                chunk,
            )
            if do_search:
                best_alpha = (-1.0, config.blend_alpha)
                for a in config.blend_alphas:
                    p = evaluate(
                        _cached_scorer(cached, val_users, a, chunk),
                        train_v,
                        val_v,
                        users=val_users,
                        auc_max_users=0,
                        chunk_size=chunk,
                    )["precision_at_10"]
                    blend_log[str(a)] = p
                    if p > best_alpha[0] + 1e-6:
                        best_alpha = (p, a)
                alpha_choice = best_alpha[1]
            report("blend_search", 0.5)
            # validation metrics of the chosen configuration (warm blend, cold LF)
            metrics.update(
                evaluate(
                    _cached_scorer(cached, val_users, alpha_choice, chunk),
                    train_v,
                    val_v,
                    users=val_users,
                    chunk_size=chunk,
                    auc_max_users=auc_users,
                )
            )
            del cached
            metrics["lightfm_precision_at_10"] = float(best_lf["precision"])
    if cold_items.size and cold_users.size:
        with clock("evaluate_s"):
            # ranked among the held-out items only (what item_subset would do),
            # scoring just their columns
            cold_rows = metadata_only_rows(f_items, n_items)[cold_items]
            model_emb, model_b = best_lf["feature_embeddings"]
            cold = evaluate(
                _lf_scorer(
                    np.asarray(cold_rows @ model_emb, np.float32),
                    np.asarray(cold_rows @ model_b, np.float32).ravel(),
                    ue_v,
                    eval_users.position,
                ),
                train_v[:, cold_items],
                split.cold_test[:, cold_items],
                users=cold_users,
                auc_max_users=auc_users,
            )
            metrics.update({f"cold_{k}": v for k, v in cold.items()})
    report("blend_search", 1.0)

    # ---- final model on everything with the chosen parameters
    epochs = max(1, int(best_lf["epochs"]))
    if continue_final and "model" in best_lf:
        # the validation model has seen everything but the holdout: train the
        # held-out pairs as many times as the rest (cost: a few % of an epoch)
        model = best_lf.pop("model")
        ones, weights = _interactions(
            split.test + split.cold_test, mean=float(x.data.mean()) if x.nnz else 1.0
        )
        final_epochs = int(config.catchup_passes or epochs)
        final_fit = "continued"
    else:
        ones, weights = _interactions(x)
        best_lf.pop("model", None)
        model = _lightfm(
            config,
            best_lf["components"],
            best_lf["learning_rate"],
            best_lf["alpha"],
            config.seed,
        )
        final_epochs = epochs
        final_fit = "refit"
    for epoch in range(final_epochs):
        with clock("lightfm_fit_s"):
            model.fit_partial(
                ones,
                user_features=f_users,
                item_features=f_items,
                sample_weight=weights,
                epochs=1,
                num_threads=threads,
            )
        report("refit", 0.8 * (epoch + 1) / max(final_epochs, 1))
    with clock("item_item_s"):
        neighbors = _fit_item_item(x, ii_choice, config)
    report("refit", 1.0)

    # ---- serving artifacts
    with clock("artifacts_s"):
        item_emb, item_b, user_emb, user_b = _representations(model, f_items, f_users)
        meta_rows = metadata_only_rows(f_items, n_items)
        meta_emb = np.asarray(meta_rows @ model.item_embeddings, dtype=np.float32)
        meta_b = np.asarray(meta_rows @ model.item_biases, dtype=np.float32).ravel()
        label_names, label_cols = item_fz.label_columns()
        item_labels = f_items[:, label_cols].tocsr()
        item_labels.data[:] = 1.0
        item_labels = item_labels.astype(np.float32)
        popularity = np.bincount(x.indices, minlength=n_items).astype(np.float32)
        trending = _trending(im, data, config)
        gram_all = (item_emb.astype(np.float64).T @ item_emb.astype(np.float64)) / max(
            n_items, 1
        )
        foldin_scale = _calibrate_foldin(x, item_emb, user_emb, gram_all, config, rng)
        chosen = {
            "components": int(best_lf["components"]),
            "learning_rate": float(best_lf["learning_rate"]),
            "alpha": float(best_lf["alpha"]),
            "epochs": int(epochs),
            "final_fit": final_fit,
            # refit: epochs over all data; continued: passes over the holdout
            "final_epochs": int(final_epochs),
            "num_threads": int(threads),
            "holdout_share": round(split.holdout_share, 4),
            "item_item": ii_choice,
            "blend_alpha": float(alpha_choice),
        }
        params = config.as_dict()
        params["chosen"] = chosen
        params["search_trials"] = trial_log
        params["blend_search"] = blend_log
        bundle = ModelBundle(
            item_pks=im.items.pks.copy(),
            user_pks=im.users.pks.copy(),
            item_embeddings=item_emb,
            item_biases=item_b,
            user_embeddings=user_emb,
            user_biases=user_b,
            item_feature_embeddings=model.item_embeddings.astype(np.float32),
            item_feature_biases=model.item_biases.astype(np.float32),
            user_feature_embeddings=model.user_embeddings.astype(np.float32),
            user_feature_biases=model.user_biases.astype(np.float32),
            neighbors=neighbors,
            popularity=popularity,
            trending=trending,
            item_labels=item_labels,
            label_names=label_names,
            label_feature_index=label_cols,
            item_featurizer=item_fz,
            user_featurizer=user_fz,
            params=params,
            blend={
                "alpha": float(alpha_choice),
                "foldin_scale": float(foldin_scale),
                "foldin_regularization": float(config.foldin_regularization),
                "trained_until": _trained_until(data),
            },
            metrics=metrics,
            item_metadata_embeddings=meta_emb,
            item_metadata_biases=meta_b,
        )
        del model
    if n_items >= config.ann_min_items:
        from .ann import ANN_FORMAT, build_index

        with clock("ann_s"):
            bundle.ann_index = build_index(item_emb, item_b, config, threads)
        bundle.blend["ann_format"] = ANN_FORMAT
    report("artifacts", 1.0)
    timings = {k: round(v, 3) for k, v in clock.parts.items()}
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    return TrainResult(
        bundle=bundle,
        params=params,
        metrics=metrics,
        data_stats=data_stats,
        timings=timings,
    )


def _fit_item_item(
    x: sp.csr_matrix, choice: dict, config: TrainConfig
) -> sp.csr_matrix:
    if choice["model"] == "ease":
        g = gram(x)
        diag = np.diag(g)
        diag_mean = float(diag[diag > 0].mean()) if np.any(diag > 0) else 1.0
        b = ease_from_gram(g, choice["lambda_factor"] * diag_mean)
        return prune_dense_top_k(b, config.ease_neighbors_k)
    return cosine_neighbors(x, k=config.neighbors_k, shrink=choice["shrink"])


def _ii_scorer(history: sp.csr_matrix, neighbors: sp.csr_matrix):
    def scorer(users: np.ndarray) -> np.ndarray:
        return np.asarray((history[users] @ neighbors).toarray())

    return scorer


def _trending(im, data: TrainingData, config: TrainConfig) -> np.ndarray:
    """Interactions per item in the last window relative to the item's average rate."""
    n_items = len(im.items)
    ts = np.asarray(data.timestamps, dtype=np.float64)
    if ts.size == 0 or not np.isfinite(ts).any():
        return np.zeros(n_items, np.float32)
    idx = im.items.indices(data.item_ids)
    ok = (idx >= 0) & np.isfinite(ts)
    idx, ts = idx[ok], ts[ok]
    t_max, t_min = ts.max(), ts.min()
    window = config.trending_window_days * SECONDS_PER_DAY
    recent = np.bincount(idx[ts >= t_max - window], minlength=n_items)
    total = np.bincount(idx, minlength=n_items)
    share = window / max(t_max - t_min, window)
    # positive when an item gets more than its usual share of activity lately
    return ((recent - share * total) / np.sqrt(share * total + 1.0)).astype(np.float32)


def _trained_until(data: TrainingData) -> float | None:
    """Newest interaction timestamp of the training data (None: no timestamps)."""
    ts = np.asarray(data.timestamps, dtype=np.float64)
    ts = ts[np.isfinite(ts)]
    return float(ts.max()) if ts.size else None


def _calibrate_foldin(x, item_emb, user_emb, gram_all, config, rng) -> float:
    """Least-squares scale mapping fold-in vectors onto the trained user vectors."""
    users = np.flatnonzero(np.diff(x.indptr) > 0)
    if users.size == 0:
        return 1.0
    users = rng.choice(users, size=min(500, users.size), replace=False)
    num = den = 0.0
    for u in users:
        lo, hi = x.indptr[u], x.indptr[u + 1]
        f = foldin_user(
            item_emb,
            x.indices[lo:hi],
            x.data[lo:hi],
            gram_all,
            x.shape[1],
            config.foldin_regularization,
        ).astype(np.float64)
        num += float(f @ user_emb[u])
        den += float(f @ f)
    return num / den if den > 0 else 1.0
