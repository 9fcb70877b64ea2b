#!/usr/bin/env python
"""How many ANN candidates `Recommender.recommend` needs: its top-k against an exact
scoring of the whole catalog, and its CPU time, for several pool sizes.

    .venv/bin/python benchmarks/ann_candidates.py --db recsite_bench \
        [--users 1000] [--pools 300,150,100,60] [--n 10,50]

Uses the active model of a benchmark database (`benchmarks/run.py --keep-db`) and
real users' histories read the way serving reads them (newest first, type weights,
recency, seen items excluded). "Exact" is the same request with the hnswlib index
switched off, so it scores every item; the overlap is |ANN top-n ∩ exact top-n| / n,
averaged over the users. The engine asks the index for max(pool, 3k + excluded).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="recsite_bench")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--pools", default="300,150,100,60")
    p.add_argument("--n", default="10,50", help="list lengths to compare")
    p.add_argument("--spare", type=int, default=5, help="k = n + spare (as serving)")
    args = p.parse_args(argv)

    from benchmarks.perf.context import setup_django_for

    setup_django_for(args.db)
    import numpy as np
    from django.db import connection

    from recommendations import serving
    from recommendations.selectors import serving as db

    model = serving.current_model()
    if model is None:
        raise SystemExit("no active model in this database")
    rec = model.recommender
    with connection.cursor() as cur:
        cur.execute(
            "SELECT u.external_id FROM users_enduser u WHERE EXISTS (SELECT 1 FROM "
            "recommendations_interaction x WHERE x.user_id = u.id) "
            "ORDER BY md5(u.external_id) LIMIT %s",
            [args.users],
        )
        ids = [r[0] for r in cur.fetchall()]
    calls = []
    for external_id in ids:
        _signature, user = db.end_user_with_history(
            external_id, limit=serving.SEEN_LIMIT
        )
        history, weights, times, seen = serving._history_arrays(
            user[2], user[3], user[4]
        )
        calls.append(
            {
                "user_pk": user[0],
                "history_item_pks": history,
                "history_weights": weights,
                "history_timestamps": serving._times_after_training(
                    times, model.trained_until
                ),
                "user_attributes": user[1] or {},
                "exclude_item_pks": seen,
            }
        )

    def run(k: int, *, pool: int | None = None, exact: bool = False):
        saved = rec._ann, rec._ann_candidates
        if exact:
            rec._ann = None
        if pool:
            rec._ann_candidates = pool
        try:
            for c in calls[:20]:  # warm-up
                rec.recommend(k=k, **c)
            t0 = time.process_time()
            out = [rec.recommend(k=k, **c).item_pks for c in calls]
            ms = (time.process_time() - t0) / len(calls) * 1000
        finally:
            rec._ann, rec._ann_candidates = saved
        return out, ms

    print(
        f"model v{model.version_id}: {rec.n_items:,} items; {len(calls)} users; "
        f"pool in the bundle: {rec._ann_candidates}"
    )
    print("| n | pool | top-n overlap with exact | recommend() CPU ms |")
    print("|---|---|---|---|")
    for n in [int(v) for v in args.n.split(",")]:
        k = n + args.spare
        exact, exact_ms = run(k, exact=True)
        print(f"| {n} | all items (exact) | 1.000 | {exact_ms:.2f} |")
        for pool in [int(v) for v in args.pools.split(",")]:
            got, ms = run(k, pool=pool)
            overlap = np.mean(
                [
                    len(set(a[:n].tolist()) & set(b[:n].tolist())) / max(1, len(b[:n]))
                    for a, b in zip(got, exact)
                ]
            )
            print(f"| {n} | {pool} | {overlap:.3f} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
