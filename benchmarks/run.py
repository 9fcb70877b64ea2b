#!/usr/bin/env python
"""recsite performance benchmark: one command, a report with same-run baselines.

    .venv/bin/python benchmarks/run.py [--scale tiny|default|large]
        [--users N --items N --interactions N] [--only ingest,extract,...]

Generates synthetic data with the engine's generator, loads it through the real paths
(bulk API, `POST /api/v1/interactions/`), trains through the training service, serves
under load from wrk (or a bounded Python generator) on 127.0.0.1, measures memory per
worker, and writes docs/benchmarks.md. It uses its own database (created and dropped)
and its own gunicorn. See docs/benchmarks.md and README "Benchmarks".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.perf import db, floor, phases, report  # noqa: E402
from benchmarks.perf.context import SCALES, SECTION_KEYS, Context, Scale  # noqa: E402
from benchmarks.perf.machine import machine_info  # noqa: E402
from benchmarks.perf.stats import timer  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="default")
    p.add_argument("--users", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--interactions", type=int)
    p.add_argument("--dim", type=int, help="model dimension (default: 64; tiny: 8)")
    p.add_argument(
        "--epochs", type=int, help="fixed LightFM epochs for the training ratio"
    )
    p.add_argument("--seconds", type=float, help="length of each serving load run")
    p.add_argument(
        "--only",
        default=",".join(SECTION_KEYS),
        help=f"comma-separated sections: {','.join(SECTION_KEYS)}",
    )
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--train-threads", type=int, default=2)
    p.add_argument(
        "--train-repeats",
        type=int,
        default=None,
        help="runs of the training pipeline and of the bare fit, alternately; "
        "the ratio compares the best of each (default 2; large: 1)",
    )
    p.add_argument(
        "--no-search",
        action="store_true",
        help="skip the separate run with hyper-parameter search",
    )
    p.add_argument(
        "--search-budget",
        type=float,
        default=None,
        help="time budget of the search run (s)",
    )
    p.add_argument(
        "--db", default="recsite_bench", help="benchmark database (dropped!)"
    )
    p.add_argument(
        "--keep-db", action="store_true", help="do not drop the database at the end"
    )
    p.add_argument(
        "--reuse-db",
        action="store_true",
        help="reuse a kept database (skips generation load; needs --keep-db before)",
    )
    p.add_argument(
        "--output", type=Path, help="report path (default docs/benchmarks.md)"
    )
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument(
        "--work-dir", type=Path, help="artifacts and logs (default .local/bench/<db>)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--profile", action="store_true", help="pyinstrument profile of training"
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="re-render the report from the results JSON of --scale",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="with --render-only: combine the sections of several runs' JSON "
        "(each section keeps the command and date of the run that measured it)",
    )
    # internal: child processes
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--params", help=argparse.SUPPRESS)
    p.add_argument("--no-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_context(args: argparse.Namespace) -> Context:
    base = dict(SCALES[args.scale])
    for key in ("users", "items", "interactions", "dim", "epochs", "seconds"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    scale = Scale(name=args.scale, **base)
    work = args.work_dir or ROOT / ".local" / "bench" / args.db
    (work / "static").mkdir(parents=True, exist_ok=True)
    default_out = "benchmarks-large.md" if args.scale == "large" else "benchmarks.md"
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(sections) - set(SECTION_KEYS)
    if unknown:
        raise SystemExit(f"unknown sections: {sorted(unknown)}")
    search_budget = args.search_budget
    if search_budget is None:
        search_budget = {"tiny": 5.0, "default": 300.0, "large": 900.0}[args.scale]
    return Context(
        scale=scale,
        sections=sections,
        db_name=args.db,
        db_url=db.bench_url(args.db),
        work_dir=work,
        log_path=work / "bench.log",
        output=args.output or ROOT / "docs" / default_out,
        results_json=args.results_dir / f"{args.scale}.json",
        connections=args.connections,
        train_threads=args.train_threads,
        train_repeats=max(
            1,
            args.train_repeats or (1 if args.scale == "large" else 2),
        ),
        with_search=not args.no_search,
        search_budget_s=search_budget,
        keep_db=args.keep_db,
        reuse_db=args.reuse_db,
        seed=args.seed,
    )


def merge_results(paths: list[Path]) -> dict:
    """Sections of several runs (later files win for the sections they measured)."""
    merged: dict = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        meta = data.get("meta", {})
        for key in SECTION_KEYS:
            if isinstance(data.get(key), dict) and key != "large":
                data[key].setdefault(
                    "run",
                    {"command": meta.get("command"), "started": meta.get("started")},
                )
        if not merged:
            merged = data
            continue
        for key in SECTION_KEYS:
            section = data.get(key)
            if section and section.get("status") not in (None, "not run"):
                merged[key] = section
    return merged


def child_main(args: argparse.Namespace) -> int:
    """Entry of a child process (Django set up from the environment the parent gave)."""
    import django

    django.setup()
    if args.child == "train":
        out = phases.child_train(
            json.loads(args.params),
            bare=not args.no_bare,
            profile=args.profile,
            repeats=args.repeats,
        )
    else:
        raise SystemExit(f"unknown child {args.child}")
    print("CHILD_JSON " + json.dumps(out, default=str), flush=True)
    return 0


def _run_summary(results: dict) -> dict:
    """What the report says of one merged run: its command, when, and the machine's
    state then (merged runs may come from different sessions' machines)."""
    meta = results["meta"]
    machine = meta.get("machine", {})
    return {
        "command": meta["command"],
        "started": meta.get("started"),
        "sections": [key for key in SECTION_KEYS if key in results and key != "large"],
        "loadavg_at_start": machine.get("loadavg_at_start"),
        "kernel": machine.get("kernel"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    ctx = build_context(args)
    if args.render_only:
        results = merge_results(args.merge or [ctx.results_json])
        if args.merge:
            results["meta"]["merged_from"] = [
                _run_summary(json.loads(Path(p).read_text())) for p in args.merge
            ]
        ctx.results = results  # a large run summarises its own figures
        results["large"] = phases.section_large(ctx, args.results_dir)
        report.write(results, ctx.output, ctx.results_json if args.merge else None)
        print(f"wrote {ctx.output}")
        return 0
    command = "benchmarks/run.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    started = dt.datetime.now(dt.UTC)
    ctx.log_path.write_text("")
    ctx.results = {
        "meta": {
            "command": command.strip(),
            "started": started.strftime("%Y-%m-%d %H:%M:%S"),
            "scale": ctx.scale.as_dict(),
            "database": ctx.db_name,
            "machine": machine_info(db.dsn(db.bench_url("postgres"))),
            "web_workers": 2,
        },
        "setup": {},
    }
    ctx.say(
        f"recsite benchmark: scale {ctx.scale.as_dict()}, "
        f"sections {','.join(ctx.sections)}"
    )
    ctx.say(f"log: {ctx.log_path}")
    setup = ctx.results["setup"]
    reused = ctx.reuse_db and db.database_exists(ctx.db_name)
    try:
        if not reused:
            ctx.say(f"database {ctx.db_name}: create + migrate")
            with timer() as t:
                db.create_database(ctx.db_name)
                db.migrate(ctx.django_env(), ctx.log_path)
            setup["create + migrate database (s)"] = round(t(), 2)
        phases.setup_django(ctx)
        phases.create_keys(ctx)
        ctx.say("generating synthetic data (engine generator)")
        with timer() as t:
            ctx.log = phases.bench_data.generate(
                users=ctx.scale.users,
                items=ctx.scale.items,
                interactions=ctx.scale.interactions,
                seed=ctx.seed,
            )
        setup["generate synthetic data (s)"] = round(t(), 2)
        if reused:
            phases.resolve_pks(ctx)
        else:
            ctx.say("loading users and items through the real path")
            with timer() as t:
                setup.update(phases.load_catalog(ctx))
            setup["users + items loaded (s)"] = round(t(), 2)
            db.analyze(ctx.db_url)  # as autovacuum would, before ingestion looks ids up
        # 1. ingestion (loads the interactions every later phase uses)
        if reused:
            pass
        elif ctx.wants("ingest"):
            ctx.results["ingest"] = phases.phase_ingest(ctx)
        else:
            ctx.say("loading interactions by COPY (ingest not measured)")
            setup.update(phases.load_interactions_fallback(ctx))
        setup["interactions in the database"] = phases.interaction_count(ctx)
        autovacuum = db.scalar(ctx.db_url, "SHOW autovacuum")
        setup[f"ANALYZE after loading (autovacuum is {autovacuum} here) (s)"] = round(
            db.analyze(ctx.db_url), 2
        )
        if ctx.wants("extract"):
            ctx.results["extract"] = phases.phase_extract(ctx)
        if (
            ctx.wants("train")
            or ctx.wants("serve")
            or ctx.wants("similar")
            or ctx.wants("memory")
        ):
            if ctx.wants("train") or phases._active_artifact() is None:
                ctx.results["train"] = phases.phase_train(ctx)
        if ctx.wants("serve") or ctx.wants("similar"):
            out = phases.phase_serve(ctx)
            sec4, sec5 = out if isinstance(out, tuple) else (out, out)
            if ctx.wants("serve"):
                ctx.results["serve"] = sec4
            if ctx.wants("similar"):
                ctx.results["similar"] = sec5
        if ctx.wants("floor"):  # after 4-5: it shows their rows next to its own
            ctx.results["floor"] = floor.phase_floor(ctx)
        if ctx.wants("memory"):
            ctx.results["memory"] = phases.phase_memory(ctx)
    finally:
        finished = dt.datetime.now(dt.UTC)
        ctx.results["meta"]["finished"] = finished.strftime("%Y-%m-%d %H:%M:%S")
        ctx.results["meta"]["wall_s"] = round((finished - started).total_seconds(), 1)
        if ctx.wants("large"):
            ctx.results["large"] = phases.section_large(ctx, args.results_dir)
        ctx.results.pop("_train_child", None)
        for key in SECTION_KEYS:  # provenance, kept when reports are merged
            section = ctx.results.get(key)
            if isinstance(section, dict) and key != "large":
                section.setdefault(
                    "run",
                    {
                        "command": ctx.results["meta"]["command"],
                        "started": ctx.results["meta"]["started"],
                    },
                )
        report.write(ctx.results, ctx.output, ctx.results_json)
        ctx.say(f"wrote {ctx.output} and {ctx.results_json}")
        if not ctx.keep_db:
            from django.db import connections

            connections.close_all()
            db.drop_database(ctx.db_name)
            ctx.say(f"dropped database {ctx.db_name}")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    sys.exit(main())
