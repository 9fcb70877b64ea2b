"""`manage.py import_movielens DIR [--limit-users N] [--replace]`."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError


def interaction_log_subset(
    log, *, rows: np.ndarray | None = None, n_users: int | None = None
):
    """A copy of an InteractionLog with some rows and/or the first `n_users` users."""
    keep = (
        np.ones(log.n_rows, dtype=bool) if rows is None else np.zeros(log.n_rows, bool)
    )
    if rows is not None:
        keep[np.asarray(rows)] = True
    users = log.users
    if n_users is not None:
        keep &= log.user_index < n_users
        users = log.users[:n_users]
    return dataclasses.replace(
        log,
        users=users,
        user_index=log.user_index[keep],
        item_index=log.item_index[keep],
        type_index=log.type_index[keep],
        value=log.value[keep],
        timestamp=log.timestamp[keep],
    )


class Command(BaseCommand):
    help = (
        "Import a MovieLens directory (ml-100k: u.data/u.item/u.user, or ml-latest: "
        "ratings.csv/movies.csv): movies become items with their genres as categories, "
        "ratings become `rating` interactions with the value and original timestamp, "
        "ml-100k demographics become user attributes."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument(
            "--limit-users",
            type=int,
            default=None,
            help="Import only the first N users (and their ratings).",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete these users' interactions first (re-import).",
        )

    def handle(
        self, *args, directory: str, limit_users: int | None, replace: bool, **opts
    ):
        from recommendations.engine.movielens import load_movielens
        from recommendations.services.demo import DemoDataError, demo_data_load

        started = time.perf_counter()
        try:
            log = load_movielens(directory)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if limit_users is not None:
            if limit_users <= 0:
                raise CommandError("--limit-users must be positive")
            log = interaction_log_subset(log, n_users=limit_users)
        self.stdout.write(
            f"Parsed {len(log.users)} users, {len(log.items)} movies, "
            f"{log.n_rows} ratings in {time.perf_counter() - started:.1f}s; writing..."
        )
        try:
            result = demo_data_load(log=log, replace=replace)
        except DemoDataError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.users} users, {result.items} items and "
                f"{result.interactions} interactions in "
                f"{time.perf_counter() - started:.1f}s."
            )
        )
