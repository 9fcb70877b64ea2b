"""`manage.py train [--wait] [--budget SECONDS] [--set key=value ...]`."""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from recommendations.models import ModelVersion
from recommendations.services.maintenance import (
    model_version_request,
    model_versions_reap_stale,
)
from recommendations.services.registry import model_version_create
from recommendations.services.training import model_version_train

POLL_S = 2.0


def _parse_setting(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise CommandError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)  # numbers, true/false, lists
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


class Command(BaseCommand):
    help = (
        "Train a new model version. Without --wait it is queued for the Celery "
        "training worker; with --wait it trains in this process with a progress bar. "
        "The quality gate then activates it or not."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Train in this process and wait for the result.",
        )
        parser.add_argument(
            "--budget",
            type=float,
            default=None,
            help="Hyper-parameter search budget in seconds.",
        )
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Override one engine setting (TrainConfig field), "
            "e.g. --set components=64 --set search=false.",
        )

    def handle(
        self, *args, wait: bool, budget: float | None, set: list[str], **options
    ):
        params = dict(_parse_setting(item) for item in set)
        if budget is not None:
            if budget <= 0:
                raise CommandError("--budget must be positive")
            params["time_budget_s"] = budget
        if not wait:
            version, created = model_version_request(
                trigger=ModelVersion.Trigger.COMMAND, params=params or None
            )
            if created:
                self.stdout.write(
                    f"Queued model version {version.pk} (training queue)."
                )
            else:
                self.stdout.write(
                    f"Model version {version.pk} is already {version.status}; "
                    "not queuing another."
                )
            return
        model_versions_reap_stale()
        version = model_version_create(
            trigger=ModelVersion.Trigger.COMMAND, params=params or None
        )
        if version.status == ModelVersion.Status.TRAINING:
            self.stdout.write(
                f"Model version {version.pk} is already training; waiting for it."
            )
            version = self._wait_for(version)
        else:
            version = self._train_here(version)
        self._report(version)

    def _train_here(self, version: ModelVersion) -> ModelVersion:
        from tqdm import tqdm

        self.stdout.write(f"Training model version {version.pk} in this process.")
        with tqdm(
            total=100,
            unit="%",
            bar_format="{l_bar}{bar}| {n:.0f}/100 [{elapsed}]",
            file=sys.stderr,
        ) as bar:

            def progress(stage: str, percent: float) -> None:
                bar.set_description(stage[:20])
                bar.update(max(percent - bar.n, 0))

            version = model_version_train(version_id=version.pk, progress=progress)
            bar.update(max(100 - bar.n, 0))
        return version

    def _wait_for(self, version: ModelVersion) -> ModelVersion:
        while version.in_flight:
            time.sleep(POLL_S)
            version.refresh_from_db()
            self.stdout.write(
                f"  {version.progress_stage} {version.progress_percent:.0f}%"
            )
        return version

    def _report(self, version: ModelVersion) -> None:
        if version.status == ModelVersion.Status.FAILED:
            raise CommandError(f"Model version {version.pk} failed:\n{version.error}")
        metrics = version.metrics or {}
        summary = ", ".join(
            f"{name}={metrics[name]:.4f}"
            for name in ("precision_at_10", "recall_at_10", "ndcg_at_10")
            if isinstance(metrics.get(name), (int, float))
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Model version {version.pk}: {version.status} ({summary}; "
                f"{version.timings.get('total', 0):.1f}s)"
            )
        )
