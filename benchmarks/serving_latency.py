"""In-process serving latency of every recommendation call on the current database.

Needs a database with data and an active model (e.g. `manage.py seed_demo` then
`manage.py train --wait`). Times N calls of each public serving function with random
users/items (one BLAS thread, as web workers run), then the same user requests
through the full DRF stack (Django test client: auth, throttling, serializers).

    SECRET_KEY=dev .venv/bin/python benchmarks/serving_latency.py --requests 500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(fn, args_list) -> np.ndarray:
    times = []
    for args in args_list:
        t = time.perf_counter()
        fn(args)
        times.append(time.perf_counter() - t)
    return np.array(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings.base")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ["ALLOWED_HOSTS"] = "localhost,127.0.0.1,testserver"
    import django

    django.setup()
    from rest_framework.test import APIClient

    from items.models import Item
    from recommendations import serving
    from recommendations.engine.recommender import pin_single_blas_thread
    from users.models import ApiKey, EndUser
    from users.services import api_key_create

    model = serving.current_model()
    if model is None:
        raise SystemExit("no active model: run `manage.py train --wait` first")
    rng = np.random.default_rng(args.seed)
    users = list(EndUser.objects.values_list("external_id", flat=True))
    items = list(Item.objects.values_list("external_id", flat=True))
    n = args.requests
    user_ids = [users[i] for i in rng.integers(0, len(users), n)]
    item_ids = [items[i] for i in rng.integers(0, len(items), n)]
    sessions = [[items[i] for i in rng.integers(0, len(items), 3)] for _ in range(n)]
    print(
        f"model v{model.version_id}: {model.recommender.n_users} users x "
        f"{model.recommender.n_items} items; {n} requests each, one BLAS thread"
    )
    calls = {
        "recommend_for_user": (
            lambda u: serving.recommend_for_user(user_external_id=u),
            user_ids,
        ),
        "similar_items": (
            lambda i: serving.similar_items(item_external_id=i),
            item_ids,
        ),
        "popular_items": (lambda _: serving.popular_items(), range(n)),
        "session_recommendations": (
            lambda s: serving.session_recommendations(item_external_ids=s),
            sessions,
        ),
    }
    with pin_single_blas_thread():
        for name, (fn, inputs) in calls.items():
            list(map(fn, list(inputs)[:20]))  # warm caches
            ms = _timed(fn, inputs)
            print(
                f"  {name:<24} median {np.median(ms):6.2f} ms  "
                f"p99 {np.percentile(ms, 99):6.2f} ms"
            )
        key = api_key_create(name="latency-benchmark", kind=ApiKey.Kind.READ_ONLY)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key[1]}")
        try:
            ms = _timed(
                lambda u: client.get(f"/api/v1/users/{u}/recommendations/"), user_ids
            )
        finally:
            key[0].delete()
    print(
        f"  {'GET .../recommendations/':<24} median {np.median(ms):6.2f} ms  "
        f"p99 {np.percentile(ms, 99):6.2f} ms  (full DRF stack, test client)"
    )


if __name__ == "__main__":
    main()
