#!/usr/bin/env python
"""Where a serving request's time goes: CPU per request and SQL queries, in-process.

    .venv/bin/python benchmarks/serving_profile.py --db recsite_bench [--requests 500]
        [--profile recs|similar|user|item] [--top 30]

Runs the real Django stack (middleware, authentication, throttling, views) through
Django's test client against an existing benchmark database (`benchmarks/run.py
--keep-db`), with DEBUG off and one BLAS thread, and reports for each endpoint the
CPU milliseconds per request of this process (`time.process_time`), the PostgreSQL
backend's CPU milliseconds per request (from /proc of the backend process), and the
SQL queries per request. CPU time, unlike wall time, hardly moves when the machine is
busy, so before/after comparisons of a change hold on a shared machine.
`--profile ENDPOINT` adds a cProfile of that endpoint (top functions by cumulative
time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _paths(n: int, seed: int) -> dict[str, list[str]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT u.external_id FROM users_enduser u WHERE EXISTS (SELECT 1 FROM "
            "recommendations_interaction x WHERE x.user_id = u.id) ORDER BY random() "
            "LIMIT %s",
            [n],
        )
        users = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT i.external_id FROM items_item i WHERE EXISTS (SELECT 1 FROM "
            "recommendations_interaction x WHERE x.item_id = i.id) ORDER BY random() "
            "LIMIT %s",
            [n],
        )
        items = [r[0] for r in cur.fetchall()]
    rng = random.Random(seed)
    rng.shuffle(users)
    rng.shuffle(items)
    return {
        "user": [f"/api/v1/users/{u}/" for u in users],
        "recs": [f"/api/v1/users/{u}/recommendations/?n=10" for u in users],
        "item": [f"/api/v1/items/{i}/" for i in items],
        "similar": [f"/api/v1/items/{i}/similar/?n=10" for i in items],
    }


def wait_for_catalog(say=print, timeout: float = 120.0) -> None:
    """Let this process's change feed load the item catalog, as a web worker does
    during the warm-up, so the in-process figures are those of a warm worker."""
    from recommendations.catalog import catalog
    from recsite.changes import feed

    if not feed.enabled():
        return
    started = time.monotonic()
    if not feed.wait_live(timeout):
        say(f"change feed not live in-process ({feed.last_error})")
        return
    while not catalog.ready() and time.monotonic() - started < timeout:
        time.sleep(0.05)
    say(f"in-process catalog: {catalog.stats()}")


def measure_requests(
    client, paths: dict[str, list[str]], *, requests: int, warmup: int, profile=None
) -> dict[str, dict[str, float]]:
    """Per endpoint: web CPU ms, PostgreSQL backend CPU ms and SQL queries per request.

    `client`: a Django test client with credentials; `paths`: endpoint -> request
    paths (warm-up first, then the measured ones); `profile`: (endpoint, cProfile)
    to profile one endpoint's measured requests.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    out = {}
    for name, todo in paths.items():
        for path in todo[:warmup]:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
        run = todo[warmup : warmup + requests]
        if not run:
            continue
        with CaptureQueriesContext(connection) as queries:
            for path in run[:50]:
                client.get(path)
        n_queries = len(queries.captured_queries) / min(50, len(run))
        profiler = profile[1] if profile and profile[0] == name else None
        pg0, cpu0 = _backend_cpu_s(backend), time.process_time()
        wall0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for path in run:
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
        if profiler is not None:
            profiler.disable()
        out[name] = {
            "web_cpu_ms": (time.process_time() - cpu0) / len(run) * 1000,
            "pg_cpu_ms": (_backend_cpu_s(backend) - pg0) / len(run) * 1000,
            "queries": n_queries,
            "wall_ms": (time.perf_counter() - wall0) / len(run) * 1000,
        }
    return out


# Functions outside the project that a serving request waits in: the database driver
# (a round trip to PostgreSQL) and the ANN index.
_WAITS = ("psycopg2", "hnswlib")


def profile_table(profiler, requests: int, *, top: int = 16) -> str:
    """The project's own functions, and the calls into PostgreSQL and hnswlib, by
    cumulative time per request: where one request's time goes, as plain text.

    Times are cProfile's (inflated by the profiler, roughly evenly); the calls
    column is calls per request.
    """
    stats = pstats.Stats(profiler)
    root = f"{ROOT}/"
    rows = []
    for (path, line, func), (_cc, ncalls, own, cumulative, _) in stats.stats.items():
        if path.startswith(root) and not path.startswith(
            (f"{root}.venv/", f"{root}benchmarks/")
        ):
            name = f"{path[len(root):]}:{line} {func}"
        elif path == "~" and any(w in func for w in _WAITS):
            name = func.strip("<>")
        else:
            continue
        rows.append((cumulative, ncalls, own, name))
    rows.sort(reverse=True)
    lines = [f"{'ms/request':>10} {'own ms':>7} {'calls':>6}  function"]
    for cumulative, ncalls, own, name in rows[:top]:
        lines.append(
            f"{1000 * cumulative / requests:10.3f} {1000 * own / requests:7.3f} "
            f"{ncalls / requests:6.1f}  {name}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="recsite_bench")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--profile", choices=("user", "recs", "item", "similar"), default=None
    )
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from benchmarks.perf.context import setup_django_for

    setup_django_for(args.db)

    from django.test import Client

    from users.services import api_key_create

    _key, raw = api_key_create(name="serving-profile", kind="read_only")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_HOST="127.0.0.1")
    paths = _paths(args.requests + args.warmup, args.seed)
    wait_for_catalog()
    profiler = cProfile.Profile() if args.profile else None
    print(f"database {args.db}; {args.requests} requests per endpoint after warm-up")
    print(
        f"{'endpoint':8} {'web CPU ms':>10} {'PG CPU ms':>9} {'queries':>7} "
        f"{'wall ms':>8}"
    )
    costs = measure_requests(
        client,
        paths,
        requests=args.requests,
        warmup=args.warmup,
        profile=(args.profile, profiler) if profiler else None,
    )
    for name, c in costs.items():
        print(
            f"{name:8} {c['web_cpu_ms']:10.2f} {c['pg_cpu_ms']:9.2f} "
            f"{c['queries']:7.1f} {c['wall_ms']:8.2f}"
        )
    if profiler is not None:
        sort = os.environ.get("PROFILE_SORT", "cumulative")
        pstats.Stats(profiler).sort_stats(sort).print_stats(args.top)
    _key.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
