"""`manage.py import_file KIND PATH`: stream a CSV or JSON-lines file in."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations.models import ImportJob
from recommendations.services.imports import ImportFormatError, import_local_file


class Command(BaseCommand):
    help = (
        "Import users, items or interactions from a CSV or JSON-lines file in this "
        "process, through the same validation as the API (no upload size limit; "
        "constant memory). The run is recorded as an import job (GET /api/v1/imports/)."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=ImportJob.Kind.values)
        parser.add_argument("path")
        parser.add_argument(
            "--format",
            choices=ImportJob.Format.values,
            help="csv or jsonl (default: from the file extension).",
        )
        parser.add_argument(
            "--chunk-rows", type=int, default=None, help="Rows per write."
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar."
        )

    def handle(
        self, *args, kind, path, format=None, chunk_rows=None, no_progress=False, **opts
    ):
        bar = None
        if not no_progress:
            bar = tqdm(
                unit="B", unit_scale=True, unit_divisor=1024, desc=kind, file=sys.stderr
            )

        def progress(job: ImportJob) -> None:
            bar.total = job.bytes_total or None
            bar.update(job.bytes_done - bar.n)
            bar.set_postfix(
                rows=job.rows_done, accepted=job.accepted, rejected=job.rejected
            )

        try:
            job = import_local_file(
                kind=kind,
                path=path,
                format=format,
                chunk_rows=chunk_rows,
                progress=progress if bar is not None else None,
            )
        except ImportFormatError as exc:
            raise CommandError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {path}") from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(
            f"import {job.public_id}: {job.rows_done} rows, {job.accepted} accepted, "
            f"{job.duplicates} duplicates, {job.rejected} rejected"
        )
        for rejection in job.errors[:10]:
            self.stdout.write(f"  line {rejection['line']}: {rejection['errors']}")
        if job.rejected > len(job.errors[:10]):
            self.stdout.write("  … (all stored rejections: GET /api/v1/imports/<id>/)")
