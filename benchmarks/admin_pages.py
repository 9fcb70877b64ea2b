"""Time the main admin pages and count their queries on the current database.

    SECRET_KEY=dev DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> \
        .venv/bin/python benchmarks/admin_pages.py [--runs 5] [--markdown]

Meant for the demo data (`manage.py seed_demo`: 2,000 items, 1,000 users, 50,000
interactions) with a trained model. Renders each page in-process through Django's test
client (no network, DEBUG off), once to warm caches, then `--runs` times; prints the
median and worst time and the number of SQL queries of one render.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings.base")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from items.models import Item  # noqa: E402
from recommendations.models import BusinessRule, ModelVersion  # noqa: E402
from users.models import EndUser  # noqa: E402

BENCH_USER = "admin-pages-benchmark"


def pages() -> list[tuple[str, str]]:
    """(name, url) of the pages staff use most, on real rows of this database."""
    item = Item.objects.annotate(n=Count("interactions")).order_by("-n").first()
    user = EndUser.objects.annotate(n=Count("interactions")).order_by("-n").first()
    version = ModelVersion.objects.order_by("-id").first()
    rule = BusinessRule.objects.first()
    found = [
        ("dashboard (admin index)", "/admin/"),
        ("items list", "/admin/items/item/"),
        ("items list, search", "/admin/items/item/?q=a"),
        (
            "items list, cold + category",
            "/admin/items/item/?has_interactions=no&categories__id__exact=1",
        ),
        ("items list, by interactions", "/admin/items/item/?o=6"),
        ("end-users list", "/admin/users/enduser/"),
        ("interactions list", "/admin/recommendations/interaction/"),
        ("model versions list + charts", "/admin/recommendations/modelversion/"),
        ("business rules list", "/admin/recommendations/businessrule/"),
        ("API keys list", "/admin/users/apikey/"),
        ("categories list", "/admin/items/category/"),
    ]
    if item is not None:
        found.append(
            ("item page (+similar, chart)", f"/admin/items/item/{item.pk}/change/")
        )
    if user is not None:
        url = f"/admin/users/enduser/{user.pk}/change/"
        found.append(("user page (+recommendations)", url))
        found.append(
            ("user page, filtered", f"{url}?n=20&max_per_category=2&include_seen=on")
        )
    if version is not None:
        found.append(
            (
                "model version page",
                f"/admin/recommendations/modelversion/{version.pk}/change/",
            )
        )
    if rule is not None:
        found.append(
            ("rule page", f"/admin/recommendations/businessrule/{rule.pk}/change/")
        )
    return found


def measure(client: Client, url: str, runs: int) -> tuple[float, float, int, int]:
    """(median s, worst s, queries of one render, status) after one warm-up render."""
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        status = client.get(url).status_code
    # Count now: the next request clears the connection's query log.
    count = len(queries)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), count, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--markdown", action="store_true", help="Print a Markdown table."
    )
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    print(
        f"{EndUser.objects.count():,} users, {Item.objects.count():,} items, "
        f"{ModelVersion.objects.count()} model versions; {args.runs} runs per page"
    )
    if args.markdown:
        print("| page | median | worst | queries |\n|---|---:|---:|---:|")
    for name, url in pages():
        median, worst, queries, status = measure(client, url, args.runs)
        flag = "" if status == 200 else f"  (HTTP {status})"
        if args.markdown:
            print(
                f"| {name} | {median * 1000:.0f} ms | {worst * 1000:.0f} ms "
                f"| {queries} |"
            )
        else:
            print(
                f"{name:34} {median * 1000:7.0f} ms  worst {worst * 1000:6.0f} ms  "
                f"{queries:3} queries{flag}"
            )


if __name__ == "__main__":
    main()
