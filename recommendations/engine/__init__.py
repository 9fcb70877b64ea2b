"""Recommendation engine: pure Python (numpy, scipy, scikit-learn, lightfm, hnswlib).

Never imports Django. Inputs/outputs are numpy arrays and small frozen dataclasses.

Public interface (import from the submodules; the names below are stable)
--------------------------------------------------------------------------
types.py
    InteractionTypeSpec(id, name, weight, is_positive)   weight > 0; negatives subtract
    ItemMetadata(ids, external_ids, titles, descriptions, categories, tags, attributes)
        the WHOLE catalog (items without interactions are embedded from features)
    UserMetadata(ids, external_ids, attributes)
    TrainingData(user_ids, item_ids, type_ids, values, timestamps, types, items, users)
        user_ids/item_ids are DB pks (int64); type_ids match InteractionTypeSpec.id;
        values float32 (NaN = absent); timestamps float64 unix seconds.
        Interactions whose user/item pk is not in users/items metadata are dropped.
    TrainConfig(...)  defaults = product default; as_dict()/from_dict() round-trip
        (stored as ModelVersion.params). from_dict ignores unknown keys.
    Reason(kind, item_pk=None, label=None)
        kinds: because_you_interacted (item_pk), similar_to (item_pk),
        matches_category / matches_tag (label), popular, trending
    RecommendationResult(item_pks, scores, reasons, strategy)
        strategy in {"personalized", "cold_user", "popular", "session", "content"}
        item_pks int64 ranked best first, scores float32 (higher = better, finite),
        one Reason per item.
    ItemVector(vector: float32[d], bias: float)      embedding of a NEW item
    ItemOverlay(pks, vectors, biases, categories, tags)  items created after training;
        recommend/similar_items/session consider them as extra candidates.
        ItemOverlay.from_vectors(pks, [ItemVector...], categories, tags) builds one.
    ModelBundle  everything a Recommender needs (arrays + fitted featurizers +
        optional hnswlib index); produced by train_model, saved/loaded by artifacts.
        item_metadata_embeddings/_biases: each catalog item as if it were new
        (metadata only; None in bundles trained before they existed).
        blend["trained_until"]: newest training timestamp (recency, see recommend).

train.py
    train_model(data, config, progress=None) -> TrainResult
        TrainResult(bundle, params, metrics, data_stats, timings)
        progress(stage: str, fraction: float in [0, 1]) is called often.
        metrics keys: precision_at_10, recall_at_10, ndcg_at_10, auc, coverage and the
        same with prefix "cold_" (items held out of training entirely); measured on
        the validation split with the chosen hyper-parameters (the final model is
        refit on all data, or on large data the validation model continued for
        catchup_passes over the held-out pairs: params["chosen"]["final_fit"]).
        Deterministic for a fixed seed when LightFM runs one thread (small data,
        `deterministic=True` or num_threads=1; num_threads=0 = every core from
        parallel_min_pairs pairs on) and the search finishes inside time_budget_s
        (the search order is fixed; the budget can only truncate it;
        search_max_trials caps it deterministically).
        timings (s): prepare_s, item_item_s, lightfm_fit_s, evaluate_s,
        artifacts_s, ann_s, total_s.

artifacts.py
    save_artifacts(bundle, directory) -> None   npy + json (+ ann.bin), written to a
        temporary sibling then published with one os.rename; refuses to overwrite.
    load_artifacts(directory, mmap=True, verify=True) -> ModelBundle
        raises ArtifactError (message constants in artifacts.py) on missing/corrupt.

recommender.py
    Recommender(bundle)   thread-safe for reads; keyword-only methods:
        knows_user(user_pk), knows_item(item_pk); n_users, n_items, item_pks,
        recommend(user_pk, history_item_pks, history_weights=None,
                  history_timestamps=None, user_attributes=None,
                  k, exclude_item_pks=None, allowed_item_pks=None, overlay=None)
            history_weights: type weight per row (negative types subtract).
            history_timestamps (unix seconds per row): rows decay with
            recency_half_life_days, and rows newer than the training data get
            the share n / (n + recent_mix_rows) of a known user's vector (mixed
            with their fold-in) and of the item-item weight.
        similar_items(item_pk=None, item_vector=None, k, exclude_item_pks=None,
                      allowed_item_pks=None, user_pk=None, overlay=None)
            strategy "content"
        session(item_pks, k, exclude_item_pks=None, allowed_item_pks=None,
                overlay=None)
        popular(k, exclude_item_pks=None, allowed_item_pks=None)
        item_vector_from_metadata(title, description, categories, tags, attributes)
            -> ItemVector
        item_metadata_vector(item_pk) -> ItemVector | None  (a catalog item's
            metadata-only vector: what item_vector_from_metadata gives for it)
        Overlay (new) items are compared with like: in similar_items they take
        the rank their metadata similarity has among the catalog's
        metadata-only vectors; in recommend/session the rank of their LightFM
        score among the catalog's metadata-only scores (no item-item penalty).
        history weights default to 1.0 per row; pks unknown to the model are ignored.
    pin_single_blas_thread()  call once at web-process start (serving never wants
        more than one BLAS thread; setting OPENBLAS_NUM_THREADS=1 also works).

synthetic.py
    generate(n_users, n_items, n_interactions, seed) -> InteractionLog
        items: list of dicts {id, title, description, categories, tags, attributes}
        users: list of dicts {id, attributes}
        type_names: tuple[str, ...]; user_index, item_index, type_index (int arrays),
        value (float32, NaN = absent), timestamp (float64)
    DEFAULT_INTERACTION_TYPES: tuple[InteractionTypeSpec, ...] (view, click, like,
        dislike, add_to_cart, purchase, rating) with suggested weights.
    to_training_data(log, types=DEFAULT_INTERACTION_TYPES) -> TrainingData
        (pks = index + 1, as a DB would assign them)

movielens.py
    load_movielens(directory) -> InteractionLog  (ml-100k or ml-latest layout;
        ratings become type "rating" with the value)

evaluate.py / baselines.py
    evaluate(scorer, train, test, k=10, ...) -> dict; a scorer maps user indices to a
    dense score matrix; baselines (popularity, item-kNN, EASE, LightFM CF) share it.
"""
