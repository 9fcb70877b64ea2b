"""Offline quality benchmark of the default configuration against baselines.

Protocol (the same held-out split for every model): every interaction is a positive
(synthetic dislikes are dropped), distinct (user, item) pairs are split per user at
random 75/25, items seen in training are excluded, metrics @10 on the 25%. The
default configuration is evaluated THROUGH `Recommender` (the serving object); the
baselines through dense score matrices. Results replace this data set's section in
docs/quality.md.

    .venv/bin/python benchmarks/quality.py --synthetic --users 2000 --items 3000 \
        --interactions 100000
    .venv/bin/python benchmarks/quality.py --movielens /path/to/ml-100k
    .venv/bin/python benchmarks/quality.py --serving-speed --items 100000
    .venv/bin/python benchmarks/quality.py --training-speed --users 100000 \
        --items 100000 --interactions 1000000 --components 64 --epochs 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommendations.engine import synthetic
from recommendations.engine.baselines import (
    EASE,
    ItemKNN,
    LightFMScorer,
    Popularity,
)
from recommendations.engine.evaluate import (
    evaluate,
    evaluate_top_lists,
    holdout_pairs,
)
from recommendations.engine.itemitem import prune_dense_top_k
from recommendations.engine.recommender import (
    Recommender,
    pin_single_blas_thread,
)
from recommendations.engine.train import train_model
from recommendations.engine.types import TrainConfig

DOC = ROOT / "docs" / "quality.md"
COLUMNS = ("precision_at_10", "recall_at_10", "ndcg_at_10", "coverage")


def machine() -> str:
    """nproc and CPU model."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, Python {platform.python_version()}"


def load(args) -> tuple[str, synthetic.InteractionLog]:
    """The data set and its section key."""
    if args.movielens:
        from recommendations.engine.movielens import load_movielens

        return f"MovieLens {Path(args.movielens).name}", load_movielens(args.movielens)
    log = synthetic.generate(
        n_users=args.users,
        n_items=args.items,
        n_interactions=args.interactions,
        seed=args.seed,
    )
    key = f"synthetic {args.users} users x {args.items} items, {args.interactions} rows"
    return key, log


def run_quality(args) -> None:
    """Fit every model on the same split and write the table."""
    key, log = load(args)
    keep = np.ones(log.n_rows, dtype=bool)
    if "dislike" in log.type_names:
        keep = log.type_index != log.type_names.index("dislike")
    n_users, n_items = len(log.users), len(log.items)
    train, test = holdout_pairs(
        log.user_index[keep],
        log.item_index[keep],
        n_users,
        n_items,
        fraction=0.25,
        seed=args.seed,
    )
    print(
        f"{key}: {train.nnz + test.nnz} positive pairs, train {train.nnz}, "
        f"test {test.nnz}, density {(train.nnz + test.nnz) / n_users / n_items:.4f}",
        flush=True,
    )
    rows: list[tuple[str, dict, float]] = []

    def record(name: str, metrics: dict, fit_s: float) -> None:
        rows.append((name, metrics, fit_s))
        shown = " ".join(f"{c.split('_')[0][:4]}={metrics[c]:.4f}" for c in COLUMNS)
        print(f"  {name:<38} {shown} fit={fit_s:.1f}s", flush=True)

    config = TrainConfig(time_budget_s=args.budget)
    t0 = time.perf_counter()
    result = train_model(
        synthetic.training_data_from_pairs(log, train),
        config,
        progress=_progress_printer(),
    )
    fit_default = time.perf_counter() - t0
    print(flush=True)
    rec = Recommender(result.bundle)

    def recommend(u: int) -> np.ndarray:
        seen = train.indices[train.indptr[u] : train.indptr[u + 1]] + 1
        res = rec.recommend(
            user_pk=u + 1, history_item_pks=seen, k=10, exclude_item_pks=seen
        )
        return res.item_pks - 1

    with pin_single_blas_thread():
        t0 = time.perf_counter()
        served = evaluate_top_lists(recommend, test)
        per_request = (time.perf_counter() - t0) / max(served["n_users"], 1)
    record("**default config via Recommender**", served, fit_default)
    b = result.bundle
    record(
        "LightFM hybrid alone (same fit)",
        evaluate(
            lambda u: b.user_embeddings[u] @ b.item_embeddings.T + b.item_biases,
            train,
            test,
        ),
        float("nan"),
    )
    baselines = [
        Popularity(),
        ItemKNN(k=100, shrink=10.0),
        EASE(factor=4.0),
        LightFMScorer(
            name="LightFM pure CF (32 comp, 30 epochs)",
            components=32,
            epochs=30,
            seed=args.seed,
        ),
    ]
    for model in baselines:
        t0 = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - t0
        name = model.name
        if isinstance(model, EASE):
            name = f"EASE dense (lambda = 4 x mean pop = {model.lam_used:.0f})"
        record(name, evaluate(model, train, test), fit_s)
        if isinstance(model, EASE):
            pruned = prune_dense_top_k(model.b, config.ease_neighbors_k)
            record(
                f"EASE pruned to top-{config.ease_neighbors_k}/item",
                evaluate(_sparse_scorer(model.train, pruned), train, test),
                fit_s,
            )
    write_section(key, args, rows, result, per_request)


def _sparse_scorer(history, neighbors):
    def scorer(users: np.ndarray) -> np.ndarray:
        return (history[users] @ neighbors).toarray()

    return scorer


def _progress_printer():
    last = [-1]

    def show(stage: str, fraction: float) -> None:
        pct = int(fraction * 100)
        if pct // 5 != last[0] // 5:
            last[0] = pct
            print(
                f"\r  training default config: {pct:3d}% ({stage})   ",
                end="",
                flush=True,
            )

    return show


def write_section(key, args, rows, result, per_request) -> None:
    """Replace this data set's section of docs/quality.md."""
    command = ".venv/bin/python benchmarks/quality.py " + " ".join(sys.argv[1:])
    lines = [
        f"<!-- run: {key} -->",
        f"### {key}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        (
            f"Date: {dt.date.today().isoformat()}; seed {args.seed}; "
            f"time budget {args.budget:.0f} s"
        ),
        "",
        "| model | P@10 | R@10 | NDCG@10 | coverage | fit time |",
        "|---|---|---|---|---|---|",
    ]
    for name, m, fit_s in rows:
        fit = "(shared)" if not np.isfinite(fit_s) else f"{fit_s:.1f} s"
        lines.append(
            f"| {name} | {m['precision_at_10']:.4f} | {m['recall_at_10']:.4f} | "
            f"{m['ndcg_at_10']:.4f} | {m['coverage']:.3f} | {fit} |"
        )
    chosen = result.params["chosen"]
    vm = result.metrics
    lines += [
        "",
        f"Chosen on validation: {chosen}.  ",
        (
            "Validation metrics of the chosen model (inner split of the 75%): "
            f"P@10 {vm.get('precision_at_10', float('nan')):.4f}, "
            f"AUC {vm.get('auc', float('nan')):.3f}; cold items (5% held out, "
            f"metadata only): P@10 {vm.get('cold_precision_at_10', float('nan')):.4f}"
            f", AUC {vm.get('cold_auc', float('nan')):.3f}.  "
        ),
        (
            f"Serving: {per_request * 1e3:.2f} ms per `recommend` call (history + "
            "exclusions, one thread) while evaluating.  "
        ),
        "Training timings: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()),
        f"<!-- end: {key} -->",
        "",
    ]
    replace_section(key, "\n".join(lines))


def replace_section(key: str, text: str) -> None:
    """Insert or replace one marked section of the document."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    doc = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(
        rf"<!-- run: {re.escape(key)} -->.*?<!-- end: {re.escape(key)} -->\n?",
        re.DOTALL,
    )
    if pattern.search(doc):
        doc = pattern.sub(lambda _: text, doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc)
    print(f"wrote {DOC}")


HEADER = """# Recommendation quality

Generated by `benchmarks/quality.py`; each section is one data set and is
replaced when the benchmark is re-run on it.
"""


def run_serving_speed(args) -> None:
    """Time Recommender requests on a synthetic catalog of `--items` items."""
    pin_single_blas_thread()
    log = synthetic.generate(
        n_users=args.users,
        n_items=args.items,
        n_interactions=args.interactions,
        seed=args.seed,
    )
    config = TrainConfig(
        components=64, search=False, max_epochs=3, time_budget_s=args.budget
    )
    t0 = time.perf_counter()
    result = train_model(synthetic.to_training_data(log), config)
    print(
        f"trained in {time.perf_counter() - t0:.1f} s; ann={result.bundle.ann_index is not None}"
    )
    rec = Recommender(result.bundle)
    rng = np.random.default_rng(0)
    users = rng.integers(0, len(log.users), 300)
    hists = [np.unique(log.item_index[log.user_index == u]) + 1 for u in users]
    for label, kwargs in (
        (
            "known user, history + exclusions",
            lambda u, h: {
                "user_pk": int(u) + 1,
                "history_item_pks": h,
                "exclude_item_pks": h,
            },
        ),
        (
            "unknown user, fold-in from history",
            lambda u, h: {
                "user_pk": None,
                "history_item_pks": h,
                "exclude_item_pks": h,
            },
        ),
    ):
        times = []
        for u, h in zip(users, hists):
            t = time.perf_counter()
            rec.recommend(k=50, **kwargs(u, h))
            times.append(time.perf_counter() - t)
        times = np.array(times[20:]) * 1e3
        print(
            f"{label}: median {np.median(times):.3f} ms, p95 "
            f"{np.percentile(times, 95):.3f} ms (k=50, {args.items} items, "
            f"median history {int(np.median([len(h) for h in hists]))})"
        )
    times = []
    for i in range(1, 281):
        t = time.perf_counter()
        rec.similar_items(item_pk=i, k=20)
        times.append(time.perf_counter() - t)
    times = np.array(times[20:]) * 1e3
    print(
        f"similar_items: median {np.median(times):.3f} ms, p95 {np.percentile(times, 95):.3f} ms"
    )


def run_training_speed(args) -> None:
    """Pipeline (search off, fixed epochs) vs the bare LightFM fit on the same data."""
    import resource

    from lightfm import LightFM

    from recommendations.engine import train as engine_train
    from recommendations.engine.dataset import build_matrix
    from recommendations.engine.features import ItemFeaturizer, UserFeaturizer

    t0 = time.perf_counter()
    log = synthetic.generate(
        n_users=args.users,
        n_items=args.items,
        n_interactions=args.interactions,
        seed=args.seed,
    )
    data = synthetic.to_training_data(log)
    print(f"generated in {time.perf_counter() - t0:.1f} s", flush=True)
    config = TrainConfig(
        components=args.components,
        max_epochs=args.epochs,
        search=False,
        seed=args.seed,
        time_budget_s=args.budget,
    )
    if args.search:
        # the product default (search within the time budget), components fixed
        config = TrainConfig(
            components=args.components, seed=args.seed, time_budget_s=args.budget
        )
    if args.threads:
        config = config.replace(num_threads=args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    result = train_model(data, config)
    pipeline_s, pipeline_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"pipeline {pipeline_s:.1f} s (cpu {pipeline_cpu:.1f} s)", flush=True)
    if args.save:
        from recommendations.engine.artifacts import save_artifacts

        save_artifacts(result.bundle, args.save)
        print(f"saved the bundle to {args.save}", flush=True)
    for key, value in result.timings.items():
        print(f"  {key}: {value:.2f}", flush=True)
    threads = int(result.params.get("chosen", {}).get("num_threads", 0)) or (
        config.num_threads or 1
    )
    epochs = int(result.params["chosen"]["epochs"])
    print(f"chosen: {result.params['chosen']}", flush=True)
    print(f"metrics: {result.metrics}", flush=True)
    if args.no_bare:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {peak_mb:.0f} MB", flush=True)
        if args.label:
            write_pipeline_only(args, result, pipeline_s, pipeline_cpu, peak_mb)
        return
    # the bare fit: same matrix, features, parameters, epochs and threads
    x = build_matrix(data, half_life_days=config.half_life_days).matrix
    item_fz = ItemFeaturizer.fit(
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
    f_items = item_fz.transform(data.items)
    f_users = user_fz.transform(data.users.attributes)
    ones, weights = engine_train._interactions(x)
    model = LightFM(
        no_components=config.components,
        learning_rate=config.learning_rate,
        loss=config.loss,
        item_alpha=config.item_alpha,
        user_alpha=config.user_alpha,
        max_sampled=config.max_sampled,
        random_state=np.random.RandomState(config.seed),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(
        ones,
        user_features=f_users,
        item_features=f_items,
        sample_weight=weights,
        epochs=epochs,
        num_threads=threads,
    )
    bare_s, bare_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = pipeline_s / bare_s
    print(
        f"bare LightFM fit {bare_s:.1f} s (cpu {bare_cpu:.1f} s); ratio {ratio:.2f}; "
        f"peak RSS {peak_mb:.0f} MB",
        flush=True,
    )
    if args.label:
        write_training_speed(
            args,
            result,
            pipeline_s,
            pipeline_cpu,
            bare_s,
            bare_cpu,
            peak_mb,
            threads,
            epochs,
        )


def write_training_speed(
    args, result, pipeline_s, pipeline_cpu, bare_s, bare_cpu, peak_mb, threads, epochs
) -> None:
    """Replace this run's row block in the "Training speed" section."""
    key = (
        f"training speed: {args.label} ({args.users} users x {args.items} items, "
        f"{args.interactions} rows)"
    )
    command = ".venv/bin/python benchmarks/quality.py " + " ".join(sys.argv[1:])
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
    lines = [
        f"<!-- run: {key} -->",
        (
            f"#### {args.label}: {args.users:,} users x {args.items:,} items, "
            f"{args.interactions:,} rows"
        ),
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}  ",
        f"Date: {dt.date.today().isoformat()}; {config_text(args, threads, epochs)}",
        "",
        "| what | wall s | CPU s |",
        "|---|---|---|",
        (
            f"| pipeline `train_model` (search off) | {pipeline_s:.1f} | "
            f"{pipeline_cpu:.1f} |"
        ),
        (
            f"| bare `LightFM.fit` (same matrix, features, params, epochs, threads) | "
            f"{bare_s:.1f} | {bare_cpu:.1f} |"
        ),
        (
            f"| **ratio pipeline / bare fit** | **{pipeline_s / bare_s:.2f}** | "
            f"{pipeline_cpu / bare_cpu:.2f} |"
        ),
        "",
        f"Stages (s): {stages}.  ",
        f"Peak RSS of the process: {peak_mb:,.0f} MB.",
        f"<!-- end: {key} -->",
        "",
    ]
    replace_section(key, "\n".join(lines))


def run_ann_recall(args) -> None:
    """hnswlib recall@50 vs brute force, and serving latency, per (M, ef)."""
    import hnswlib

    from recommendations.engine.ann import (
        LEGACY_FORMAT,
        augment_items,
        mips_items,
        query_vector,
    )
    from recommendations.engine.artifacts import load_artifacts

    pin_single_blas_thread()
    if args.bundle:
        bundle = load_artifacts(args.bundle, mmap=False)
    else:
        log = synthetic.generate(
            n_users=args.users,
            n_items=args.items,
            n_interactions=args.interactions,
            seed=args.seed,
        )
        config = TrainConfig(
            components=args.components, max_epochs=args.epochs, search=False
        )
        bundle = train_model(synthetic.to_training_data(log), config).bundle
    emb = np.asarray(bundle.item_embeddings, np.float32)
    bias = np.asarray(bundle.item_biases, np.float32)
    plain = augment_items(emb, bias)
    n_items = plain.shape[0]
    rng = np.random.default_rng(args.seed)
    users = rng.choice(bundle.n_users, size=min(1000, bundle.n_users), replace=False)
    queries = np.hstack(
        [
            np.asarray(bundle.user_embeddings[users], np.float32),
            np.ones((users.size, 1), np.float32),
        ]
    )
    exact = np.argsort(-(queries @ plain.T), axis=1)[:, :50]
    # similar_items asks the index with [v / |v|, 0]: exact cosine neighbours
    items = rng.choice(n_items, size=500, replace=False)
    unit = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)
    cos = unit[items] @ unit.T
    cos[np.arange(items.size), items] = -np.inf
    exact_cos = np.argsort(-cos, axis=1)[:, :50]
    item_queries = np.hstack([unit[items], np.zeros((items.size, 1), np.float32)])
    candidates = int(bundle.params.get("ann_candidates", 300))
    rows = []
    for fmt in args.ann_formats.split(","):
        data = plain if fmt == LEGACY_FORMAT else mips_items(emb, bias)
        space = "ip" if fmt == LEGACY_FORMAT else "cosine"
        for m, efc in itertools.product(
            [int(v) for v in args.ann_m.split(",")],
            [int(v) for v in args.ann_efc.split(",")],
        ):
            index = hnswlib.Index(space=space, dim=data.shape[1])
            index.init_index(
                max_elements=n_items, ef_construction=efc, M=m, random_seed=args.seed
            )
            t0 = time.perf_counter()
            index.add_items(data, np.arange(n_items), num_threads=os.cpu_count() or 1)
            build_s = time.perf_counter() - t0
            index.set_num_threads(1)
            for ef in [int(v) for v in args.ann_ef.split(",")]:
                index.set_ef(ef)
                times, pool_times = [], []
                recall, recall_pool, recall_cos = [], [], []
                for q, truth in zip(queries, exact):
                    q = query_vector(q, index.dim)[None, :]
                    t = time.perf_counter()
                    labels, _ = index.knn_query(q, k=50, num_threads=1)
                    times.append(time.perf_counter() - t)
                    recall.append(np.isin(truth, labels[0]).mean())
                    t = time.perf_counter()
                    pool, _ = index.knn_query(q, k=candidates, num_threads=1)
                    pool_times.append(time.perf_counter() - t)
                    recall_pool.append(np.isin(truth, pool[0]).mean())
                for q, truth in zip(item_queries, exact_cos):
                    q = query_vector(q, index.dim)[None, :]
                    pool, _ = index.knn_query(q, k=candidates, num_threads=1)
                    recall_cos.append(np.isin(truth, pool[0]).mean())
                row = {
                    "format": fmt,
                    "M": m,
                    "ef_construction": efc,
                    "ef": ef,
                    "build_s": build_s,
                    "recall50": float(np.mean(recall)),
                    "recall50_p5": float(np.percentile(recall, 5)),
                    "pool_recall50": float(np.mean(recall_pool)),
                    "similar_pool_recall50": float(np.mean(recall_cos)),
                    "query_ms": float(np.median(times) * 1e3),
                    "query_p95_ms": float(np.percentile(times, 95) * 1e3),
                    "pool_ms": float(np.median(pool_times) * 1e3),
                }
                rows.append(row)
                print(
                    "  ".join(
                        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()
                    ),
                    flush=True,
                )
    rows += serving_latency(bundle, users)
    brute = []
    for q in queries[:200]:
        t = time.perf_counter()
        s = plain @ q
        np.argpartition(-s, 49)[:50]
        brute.append(time.perf_counter() - t)
    brute_ms = float(np.median(brute) * 1e3)
    print(f"brute force top-50: median {brute_ms:.3f} ms", flush=True)
    if args.label:
        write_ann_section(args, bundle, rows, brute_ms, candidates)


def serving_latency(bundle, users: np.ndarray) -> list[dict]:
    """Recommender requests through the bundle's index vs a brute-force twin."""
    import dataclasses

    from recommendations.engine.ann import ANN_FORMAT, build_index

    if bundle.ann_index is None:
        config = TrainConfig.from_dict(bundle.params)
        bundle.ann_index = build_index(
            bundle.item_embeddings, bundle.item_biases, config, os.cpu_count() or 1
        )
        bundle.blend["ann_format"] = ANN_FORMAT
    with_ann = Recommender(bundle)
    brute = Recommender(dataclasses.replace(bundle, ann_index=None))
    rng = np.random.default_rng(1)
    history_of = {}
    for u in users[:300]:
        # a plausible history: a few items near the user's own taste
        scores = bundle.item_embeddings @ bundle.user_embeddings[u]
        top = np.argsort(-scores)[:50]
        history_of[int(u)] = bundle.item_pks[rng.choice(top, 8, replace=False)]
    out = []
    for label, call in (
        (
            "recommend (known user)",
            lambda rec, u, h: rec.recommend(
                user_pk=int(bundle.user_pks[u]),
                history_item_pks=h,
                k=10,
                exclude_item_pks=h,
            ),
        ),
        (
            "recommend (fold-in)",
            lambda rec, u, h: rec.recommend(
                user_pk=None, history_item_pks=h, k=10, exclude_item_pks=h
            ),
        ),
        (
            "similar_items",
            lambda rec, u, h: rec.similar_items(item_pk=int(h[0]), k=10),
        ),
    ):
        times, same = [], []
        for u, h in history_of.items():
            t = time.perf_counter()
            a = call(with_ann, u, h)
            times.append(time.perf_counter() - t)
            b = call(brute, u, h)
            same.append(float(np.isin(a.item_pks, b.item_pks).mean()))
        times = np.array(times[20:]) * 1e3
        row = {
            "request": label,
            "median_ms": float(np.median(times)),
            "p95_ms": float(np.percentile(times, 95)),
            "same_top10": float(np.mean(same)),
        }
        print(row, flush=True)
        out.append(row)
    return out


def write_ann_section(args, bundle, rows, brute_ms, candidates) -> None:
    """Replace the ANN section of the docs."""
    key = f"ANN recall: {args.label}"
    command = ".venv/bin/python benchmarks/quality.py " + " ".join(sys.argv[1:])
    lines = [
        f"<!-- run: {key} -->",
        (
            f"#### {args.label}: {bundle.n_items:,} items x {bundle.dim} dims "
            "(+ bias), 1,000 user queries"
        ),
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}  ",
        f"Date: {dt.date.today().isoformat()}; one query thread",
        "",
        (
            "| index | M | ef_construction | ef | recall@50 | 5th pct | top-50 within the "
            f"{candidates} candidates | similar-items cosine top-50 within them | "
            f"query k=50 median / p95 ms | query k={candidates} median ms | build s |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "format" not in r:
            continue
        lines.append(
            f"| {r['format']} | {r['M']} | {r['ef_construction']} | {r['ef']} | "
            f"{r['recall50']:.3f} | "
            f"{r['recall50_p5']:.2f} | {r['pool_recall50']:.3f} | "
            f"{r['similar_pool_recall50']:.3f} | {r['query_ms']:.3f} / "
            f"{r['query_p95_ms']:.3f} | {r['pool_ms']:.3f} | {r['build_s']:.0f} |"
        )
    lines += [
        "",
        (
            "Whole `Recommender` requests with the bundle's own index (k=10, one "
            "thread, history and exclusions):"
        ),
        "",
        "| request | median ms | p95 ms | top-10 identical to brute force |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if "request" in r:
            lines.append(
                f"| {r['request']} | {r['median_ms']:.3f} | {r['p95_ms']:.3f} | "
                f"{r['same_top10']:.3f} |"
            )
    lines += [
        "",
        (
            f"Brute force (numpy, one thread) top-50 over the same items: median "
            f"{brute_ms:.2f} ms."
        ),
        f"<!-- end: {key} -->",
        "",
    ]
    replace_section(key, "\n".join(lines))


def write_pipeline_only(args, result, pipeline_s, pipeline_cpu, peak_mb) -> None:
    """A training run without the bare fit (large data, default search)."""
    key = (
        f"training speed: {args.label} ({args.users} users x {args.items} items, "
        f"{args.interactions} rows)"
    )
    command = ".venv/bin/python benchmarks/quality.py " + " ".join(sys.argv[1:])
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
    chosen = result.params["chosen"]
    m = result.metrics
    lines = [
        f"<!-- run: {key} -->",
        (
            f"#### {args.label}: {args.users:,} users x {args.items:,} items, "
            f"{args.interactions:,} rows"
        ),
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}  ",
        (
            f"Date: {dt.date.today().isoformat()}; search {'on' if args.search else 'off'}"
            f", time budget {args.budget:.0f} s"
        ),
        "",
        (
            f"Pipeline `train_model`: **{pipeline_s:.0f} s** wall ({pipeline_cpu:.0f} s "
            f"CPU); peak RSS of the whole process (including the synthetic generator's "
            f"Python objects) {peak_mb:,.0f} MB.  "
        ),
        f"Stages (s): {stages}.  ",
        f"Chosen: {chosen}.  ",
        "Validation: "
        + ", ".join(
            f"{k} {v:.4f}"
            for k, v in m.items()
            if isinstance(v, float) and k.endswith(("at_10", "auc"))
        ),
        f"<!-- end: {key} -->",
        "",
    ]
    replace_section(key, "\n".join(lines))


def config_text(args, threads: int, epochs: int) -> str:
    """One line describing the fixed training parameters."""
    return (
        f"seed {args.seed}; {args.components} components, {epochs} epochs, "
        f"{threads} LightFM thread(s), search off"
    )


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true")
    source.add_argument("--movielens", metavar="DIR")
    source.add_argument("--serving-speed", action="store_true")
    source.add_argument("--training-speed", action="store_true")
    source.add_argument("--ann-recall", action="store_true")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--budget", type=float, default=TrainConfig().time_budget_s)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="0: engine default")
    parser.add_argument("--label", default="", help="write the result to the docs")
    parser.add_argument("--save", metavar="DIR", help="training speed: save the bundle")
    parser.add_argument(
        "--search", action="store_true", help="training speed: default search on"
    )
    parser.add_argument(
        "--no-bare", action="store_true", help="training speed: skip the bare fit"
    )
    parser.add_argument("--bundle", metavar="DIR", help="ANN recall: a saved bundle")
    parser.add_argument("--ann-m", default="16,32", help="ANN recall: M values")
    parser.add_argument(
        "--ann-formats", default="ip", help="ANN recall: ip and/or mips-cosine"
    )
    parser.add_argument(
        "--ann-efc", default="100,200", help="ANN recall: ef_construction values"
    )
    parser.add_argument(
        "--ann-ef", default="50,64,100,128,200,300", help="ANN recall: ef values"
    )
    args = parser.parse_args()
    if args.serving_speed:
        run_serving_speed(args)
    elif args.training_speed:
        run_training_speed(args)
    elif args.ann_recall:
        run_ann_recall(args)
    else:
        run_quality(args)


if __name__ == "__main__":
    main()
