"""Private memory and CPU per process of a loaded Recommender (issue #6, target 6).

Builds a synthetic bundle (default 1,000,000 users x 100,000 items x 64 dims, a
top-k neighbour matrix and a real hnswlib index) through the real `save_artifacts`,
then starts W fresh worker processes that each load it with
`load_artifacts(mmap=True)` + `Recommender` (as recommendations/serving.py does),
wait until all have loaded, and run recommend()/similar_items() calls. Each worker
reports psutil's RSS/USS/PSS plus the anonymous (heap) memory of smaps_rollup, after
imports, after load and after the calls. Memory-mapped pages that another worker
also maps are shared, so with W >= 2 the USS is what one more worker costs.

    .venv/bin/python benchmarks/engine_memory.py build --out /tmp/engmem/v1
    .venv/bin/python benchmarks/engine_memory.py resave --src /tmp/engmem/v1 \
        --out /tmp/engmem/v2            # re-published by the engine under --code
    .venv/bin/python benchmarks/engine_memory.py measure --model /tmp/engmem/v2 \
        --workers 2 --calls 200

`--code DIR` (all commands) imports `recommendations.engine` from another checkout,
e.g. `git worktree add --detach /tmp/old HEAD` to measure the code before a change.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _use_code(code: str | None) -> None:
    sys.path.insert(0, str(Path(code).resolve()) if code else str(ROOT))


def _memory() -> dict[str, float]:
    """RSS/USS/PSS (psutil) and anonymous/file-backed resident memory, in MB."""
    import psutil

    info = psutil.Process().memory_full_info()
    out = {
        "rss": info.rss / MB,
        "uss": info.uss / MB,
        "pss": info.pss / MB,
    }
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Anonymous", "Private_Dirty"):
                out[key.lower()] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- build
def build(args) -> None:
    """A random bundle of the requested size, saved through save_artifacts."""
    _use_code(args.code)
    import numpy as np
    import scipy.sparse as sp

    from recommendations.engine.ann import ANN_FORMAT, build_index
    from recommendations.engine.artifacts import save_artifacts
    from recommendations.engine.features import (
        AttributeEncoder,
        ItemFeaturizer,
        TextEncoder,
        UserFeaturizer,
    )
    from recommendations.engine.types import ModelBundle, TrainConfig

    rng = np.random.default_rng(args.seed)
    n_u, n_i, d, k = args.users, args.items, args.dim, args.neighbors_k
    t0 = time.perf_counter()

    def pks(n: int) -> np.ndarray:
        # database ids in id order with gaps (deleted rows); --shuffle-pks: any order
        out = np.cumsum(rng.integers(1, 4, size=n)).astype(np.int64)
        return rng.permutation(out) if args.shuffle_pks else out

    def f32(*shape: int, scale: float = 0.1) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    categories = [f"c{i}" for i in range(50)]
    tags = [f"t{i}" for i in range(200)]
    item_fz = ItemFeaturizer(
        n_items=n_i,
        categories=categories,
        tags=tags,
        attributes=AttributeEncoder({"price": [10.0, 20.0, 50.0]}, {"brand": ["a"]}),
        text=TextEncoder([f"w{i}" for i in range(2000)], np.ones(2000, np.float32)),
        identity_share=0.5,
    )
    user_fz = UserFeaturizer(
        n_users=n_u,
        attributes=AttributeEncoder({"age": [20.0, 30.0, 40.0]}, {"country": ["us"]}),
        identity_share=0.5,
    )
    # top-k neighbours per item (random columns, duplicates summed away)
    rows = np.repeat(np.arange(n_i, dtype=np.int32), k)
    cols = rng.integers(0, n_i, size=rows.size, dtype=np.int32)
    vals = rng.random(rows.size, dtype=np.float32)
    neighbors = sp.csr_matrix((vals, (rows, cols)), shape=(n_i, n_i))
    neighbors.sum_duplicates()
    del rows, cols, vals
    n_labels = len(categories) + len(tags)
    lab_rows = np.repeat(np.arange(n_i), 3)
    lab_cols = np.concatenate(
        [
            rng.integers(0, len(categories), size=(n_i, 1)),
            len(categories) + rng.integers(0, len(tags), size=(n_i, 2)),
        ],
        axis=1,
    ).ravel()
    item_labels = sp.csr_matrix(
        (np.ones(lab_rows.size, np.float32), (lab_rows, lab_cols)),
        shape=(n_i, n_labels),
    )
    item_labels.data[:] = 1.0
    label_names = [f"category:{c}" for c in categories] + [f"tag:{t}" for t in tags]
    label_cols = np.concatenate(
        [
            item_fz.cat_offset + np.arange(len(categories)),
            item_fz.tag_offset + np.arange(len(tags)),
        ]
    ).astype(np.int64)
    item_emb, item_b = f32(n_i, d), f32(n_i)
    config = TrainConfig()
    bundle = ModelBundle(
        item_pks=pks(n_i),
        user_pks=pks(n_u),
        item_embeddings=item_emb,
        item_biases=item_b,
        user_embeddings=f32(n_u, d),
        user_biases=f32(n_u),
        item_feature_embeddings=f32(item_fz.n_features, d),
        item_feature_biases=f32(item_fz.n_features),
        user_feature_embeddings=f32(user_fz.n_features, d),
        user_feature_biases=f32(user_fz.n_features),
        neighbors=neighbors,
        popularity=rng.pareto(1.5, n_i).astype(np.float32),
        trending=rng.standard_normal(n_i).astype(np.float32),
        item_labels=item_labels,
        label_names=label_names,
        label_feature_index=label_cols,
        item_featurizer=item_fz,
        user_featurizer=user_fz,
        params=config.as_dict(),
        blend={
            "alpha": 0.5,
            "foldin_scale": 1.0,
            "foldin_regularization": float(config.foldin_regularization),
            "trained_until": 1_750_000_000.0,
            "ann_format": ANN_FORMAT,
        },
        metrics={},
        item_metadata_embeddings=f32(n_i, d),
        item_metadata_biases=f32(n_i),
    )
    print(f"arrays: {time.perf_counter() - t0:.1f} s", flush=True)
    bundle.ann_index = build_index(item_emb, item_b, config, num_threads=os.cpu_count())
    print(f"ann index: {time.perf_counter() - t0:.1f} s", flush=True)
    save_artifacts(bundle, args.out)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir()) / MB
    print(f"saved {args.out} ({size:.0f} MB) in {time.perf_counter() - t0:.1f} s")


def resave(args) -> None:
    """Load a bundle and publish it again with the engine under --code (as
    benchmarks/perf/phases.py::_graft_users does)."""
    _use_code(args.code)
    from recommendations.engine.artifacts import load_artifacts, save_artifacts

    save_artifacts(load_artifacts(args.src, mmap=True, verify=False), args.out)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir()) / MB
    print(f"saved {args.out} ({size:.0f} MB)")


# ---------------------------------------------------------------- measure
def worker(args) -> None:
    """One web-worker-like process: load, report, serve calls, report."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    _use_code(args.code)
    import numpy as np

    from recommendations.engine.artifacts import load_artifacts
    from recommendations.engine.recommender import Recommender, pin_single_blas_thread

    pin_single_blas_thread()
    result: dict = {"pid": os.getpid(), "imports": _memory()}
    t = time.process_time()
    rec = Recommender(load_artifacts(args.model, mmap=True, verify=not args.no_verify))
    result["load_cpu_s"] = time.process_time() - t
    result["loaded_self"] = _memory()
    _barrier()  # every worker has loaded: shared pages are shared now
    result["loaded"] = _memory()

    rng = np.random.default_rng(args.seed + os.getpid() % 1000)
    item_pks = np.asarray(rec.item_pks)
    user_pks = np.asarray(rec.bundle.user_pks)

    def rec_call():
        hist = rng.choice(item_pks, size=args.history)
        return rec.recommend(
            user_pk=int(rng.choice(user_pks)),
            history_item_pks=hist,
            k=10,
            exclude_item_pks=hist,
        )

    def fold_call():
        hist = rng.choice(item_pks, size=args.history)
        return rec.recommend(user_pk=None, history_item_pks=hist, k=10)

    def sim_call():
        return rec.similar_items(item_pk=int(rng.choice(item_pks)), k=10)

    calls = {"recommend": rec_call, "recommend_foldin": fold_call, "similar": sim_call}
    result["cpu_ms"] = {}
    for name, fn in calls.items():
        for _ in range(args.warmup):
            fn()
        t = time.process_time()
        for _ in range(args.calls):
            fn()
        result["cpu_ms"][name] = (time.process_time() - t) / args.calls * 1e3
    result["called_self"] = _memory()
    _barrier()
    result["called"] = _memory()
    print("RESULT " + json.dumps(result), flush=True)


def _barrier() -> None:
    print("READY", flush=True)
    sys.stdin.readline()


def _run_workers(args, n: int) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker"]
    cmd += ["--model", args.model, "--calls", str(args.calls)]
    cmd += ["--warmup", str(args.warmup), "--history", str(args.history)]
    cmd += ["--seed", str(args.seed)]
    if args.code:
        cmd += ["--code", args.code]
    if args.no_verify:
        cmd += ["--no-verify"]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    results: list[dict] = []
    for _phase in range(2):
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "READY":
                raise SystemExit(f"worker {p.pid} failed: {line!r}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
    for p in procs:
        for line in p.stdout:
            if line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT ") :]))
        p.wait()
    return results


def measure(args) -> None:
    """Run 1 worker, then W together; print a table and the per-worker increments."""
    report: dict = {"model": args.model, "code": args.code or str(ROOT), "runs": {}}
    counts = sorted({1, args.workers})
    for n in counts:
        report["runs"][n] = _run_workers(args, n)
    print(f"model {args.model}  code {report['code']}")
    print(
        f"{'workers':>7} {'phase':>8} {'RSS':>7} {'USS':>7} {'PSS':>7} {'anon':>7} "
        f"{'USS-imp':>8}   (MB, mean over workers)"
    )
    for n, res in report["runs"].items():
        for phase in ("loaded", "called"):
            mean = {
                key: sum(r[phase].get(key, 0.0) for r in res) / len(res)
                for key in ("rss", "uss", "pss", "anonymous")
            }
            model_uss = sum(r[phase]["uss"] - r["imports"]["uss"] for r in res) / len(
                res
            )
            print(
                f"{n:>7} {phase:>8} {mean['rss']:7.0f} {mean['uss']:7.0f} "
                f"{mean['pss']:7.0f} {mean['anonymous']:7.0f} {model_uss:8.0f}"
            )
    if len(counts) > 1:
        lo, hi = counts
        for phase in ("loaded", "called"):
            total = {n: sum(r[phase]["pss"] for r in report["runs"][n]) for n in counts}
            inc = (total[hi] - total[lo]) / (hi - lo)
            print(f"total PSS per extra worker ({phase}): {inc:.0f} MB")
    for n, res in report["runs"].items():
        cpu = {
            name: sum(r["cpu_ms"][name] for r in res) / len(res)
            for name in res[0]["cpu_ms"]
        }
        load = sum(r["load_cpu_s"] for r in res) / len(res)
        print(
            f"{n} worker(s): CPU ms/call "
            + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            + f"; load CPU {load:.2f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build")
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--neighbors-k", type=int, default=100)
    p.add_argument("--shuffle-pks", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("resave")
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    for name in ("measure", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--calls", type=int, default=200)
        p.add_argument("--warmup", type=int, default=20)
        p.add_argument("--history", type=int, default=20)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--no-verify", action="store_true")
        p.add_argument("--json")
    for p in sub.choices.values():
        p.add_argument("--code", help="checkout to import recommendations.engine from")
    args = parser.parse_args()
    {"build": build, "resave": resave, "measure": measure, "worker": worker}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
