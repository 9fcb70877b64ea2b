"""`python manage.py seed_demo`: a realistic synthetic catalog, users and interactions.

The data comes from `recommendations.engine.synthetic.generate` (planted tastes,
long-tailed popularity) and is written in bulk by `demo_data_load`; 1,000,000
interactions load in well under a minute.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations.engine.synthetic import generate
from recommendations.services.demo import DemoDataError, demo_data_load


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Load generated demo users, items (with categories and tags) and interactions."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=_positive, default=1_000)
        parser.add_argument("--items", type=_positive, default=2_000)
        parser.add_argument("--interactions", type=_positive, default=50_000)
        parser.add_argument("--seed", type=int, default=42, help="Random seed.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete the demo users' interactions first (otherwise a second run "
            "is refused).",
        )

    def handle(self, *args, users, items, interactions, seed, replace, **options):
        started = time.perf_counter()
        log = generate(
            n_users=users, n_items=items, n_interactions=interactions, seed=seed
        )
        generated = time.perf_counter()
        self.stdout.write(
            f"Generated {len(log.users):,} users, {len(log.items):,} items and "
            f"{log.n_rows:,} interactions in {generated - started:.1f}s; writing…"
        )
        with tqdm(
            total=log.n_rows, unit="rows", desc="interactions", disable=None
        ) as bar:
            try:
                result = demo_data_load(log=log, replace=replace, progress=bar.update)
            except DemoDataError as exc:
                raise CommandError(str(exc)) from exc
        replaced = (
            f" (replaced {result.interactions_replaced:,})"
            if result.interactions_replaced
            else ""
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {result.users:,} users, {result.items:,} items and "
                f"{result.interactions:,} interactions{replaced} in "
                f"{time.perf_counter() - generated:.1f}s."
            )
        )
