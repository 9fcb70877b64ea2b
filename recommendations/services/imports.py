"""Bulk file imports of users, items or interactions (CSV or JSON lines), streamed.

The file is read line by line and written in chunks through the same batch services
the REST API uses (`user_upsert_many`, `item_upsert_many`, `interaction_record_many`),
so a row is accepted or rejected with the same validation and messages either way.
Each chunk and the job's progress are committed together, which makes a run
resumable: a retried or redelivered task skips the rows already counted.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommendations.models import ImportJob

logger = logging.getLogger(__name__)

# Error messages (tests check them).
UNKNOWN_FORMAT = (
    "Cannot tell the file format from its name; name it .csv or .jsonl, or send "
    "format=csv or format=jsonl."
)
FILE_TOO_LARGE = (
    "The file is larger than {limit} bytes; import it with "
    "`python manage.py import_file KIND PATH` instead."
)
NOT_UTF8 = "The line is not valid UTF-8."
NOT_JSON = "The line is not valid JSON: {error}"
NOT_OBJECT = "Each line must be a JSON object."
CSV_NO_HEADER = "The CSV file has no header row."
CSV_TOO_MANY_FIELDS = "The row has more fields than the header."
BAD_JSON_CELL = "Not valid JSON: {error}"
WORKER_LOST = (
    "worker lost: no progress since {since}; {rows} rows were imported before it "
    "stopped. Upserts of users and items, and interactions with an event_id, can "
    "safely be imported again."
)

# At most this many rejected rows are kept on the job (the counts are exact).
MAX_STORED_REJECTIONS = 100
READ_CHUNK_BYTES = 1 << 20
FORMAT_BY_EXTENSION = {
    ".csv": ImportJob.Format.CSV,
    ".jsonl": ImportJob.Format.JSONL,
    ".ndjson": ImportJob.Format.JSONL,
    ".json": ImportJob.Format.JSONL,
}
# CSV cells holding lists; `a|b|c` or a JSON array.
_LIST_COLUMNS = {"categories", "tags"}
# CSV cells holding a JSON object.
_OBJECT_COLUMNS = {"attributes"}
# CSV columns `attributes.<name>` become one attribute each.
_ATTRIBUTE_PREFIX = "attributes."

ProgressCallback = Callable[[ImportJob], None]


class ImportFormatError(ValueError):
    """The request names no usable format."""


@dataclass
class BatchOutcome:
    """A batch writer's answer, in the shape the import needs."""

    accepted: int
    duplicates: int
    rejected: list[tuple[int, dict]]  # (index in the batch, field errors)


# ------------------------------------------------------------------- batch writers


def _outcome(result) -> BatchOutcome:
    """Normalise a batch service's result (dataclass or dict) to a BatchOutcome."""
    get = result.get if isinstance(result, dict) else partial(getattr, result)
    accepted = get("accepted", 0)
    duplicates = get("duplicates", 0)
    rejected = get("rejected", None) or []
    rows = []
    for entry in rejected:
        entry_get = entry.get if isinstance(entry, dict) else partial(getattr, entry)
        rows.append((int(entry_get("index")), entry_get("errors")))
    return BatchOutcome(
        accepted=accepted if isinstance(accepted, int) else len(accepted),
        duplicates=duplicates if isinstance(duplicates, int) else len(duplicates),
        rejected=rows,
    )


def _writer(kind: str) -> Callable[[list[dict]], BatchOutcome]:
    """The batch service for `kind`, as a function of a list of row dicts."""
    if kind == ImportJob.Kind.USERS:
        from users.services import user_upsert_many

        return lambda rows: _outcome(user_upsert_many(rows=rows))
    if kind == ImportJob.Kind.ITEMS:
        from items.services import item_upsert_many

        return lambda rows: _outcome(item_upsert_many(rows=rows))
    if kind == ImportJob.Kind.INTERACTIONS:
        from recommendations.services.interactions import interaction_record_many

        return lambda rows: _outcome(interaction_record_many(rows=rows))
    raise ValueError(f"unknown import kind {kind!r}")


# ---------------------------------------------------------------------- parsing


def import_format_for(*, filename: str, format: str | None = None) -> str:
    """The format to read: the explicit one, else from the file name's extension."""
    if format:
        if format not in ImportJob.Format.values:
            raise ImportFormatError(UNKNOWN_FORMAT)
        return format
    suffix = Path(filename or "").suffix.lower()
    if suffix not in FORMAT_BY_EXTENSION:
        raise ImportFormatError(UNKNOWN_FORMAT)
    return FORMAT_BY_EXTENSION[suffix]


class _CountingLines:
    """Yields the text lines of a binary stream and counts the bytes consumed."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes_done = 0
        self.lines_done = 0
        self.bad_lines: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        pending = b""
        first = True
        while True:
            chunk = self.stream.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            parts = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
            pending = parts.pop()
            for raw in parts:
                yield self._decode(raw, 1, first)
                first = False
        if pending:
            yield self._decode(pending, 0, first)

    def _decode(self, raw: bytes, newline: int, first: bool) -> str:
        self.bytes_done += len(raw) + newline
        self.lines_done += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_lines.add(self.lines_done)
            text = raw.decode("utf-8", errors="replace")
        if first and text.startswith("\ufeff"):
            text = text[1:]
        return text + "\n" if newline else text


@dataclass
class _Row:
    line: int
    data: dict | None  # None when the line could not be parsed
    errors: dict | None = None


def _parse_list(cell: str) -> list:
    cell = cell.strip()
    if cell.startswith("["):
        value = json.loads(cell)
        if not isinstance(value, list):
            raise ValueError("expected a JSON array")
        return value
    return [part.strip() for part in cell.split("|") if part.strip()]


def _parse_scalar(cell: str):
    """`10` → 10, `true` → True, `2.5` → 2.5; anything else stays a string."""
    try:
        value = json.loads(cell)
    except ValueError:
        return cell
    return value if isinstance(value, (int, float, bool)) else cell


def _parse_number(cell: str):
    """A number (e.g. unix seconds) becomes a float; other text (ISO dates) stays."""
    try:
        return float(cell)
    except ValueError:
        return cell


def _parse_bool(cell: str):
    """true/false/1/0 (any case); other text stays, for the service to reject."""
    return _BOOL_CELLS.get(cell.strip().lower(), cell)


_BOOL_CELLS = {"true": True, "false": False, "1": True, "0": False}
# CSV cells are text; these columns become the JSON type the API expects.
_CELL_PARSERS: dict[str, Callable[[str], object]] = {
    "value": _parse_number,
    "is_hidden": _parse_bool,
    "available_from": _parse_number,
    "available_until": _parse_number,
}


def _needs_conversion(name: str) -> bool:
    return (
        name in _LIST_COLUMNS
        or name in _OBJECT_COLUMNS
        or name in _CELL_PARSERS
        or name.startswith(_ATTRIBUTE_PREFIX)
    )


def _csv_row(
    header: list[str], special: list[str], values: list[str]
) -> tuple[dict, dict]:
    """One CSV record as the API's JSON object; returns (data, errors).

    `special` lists the header's columns whose text becomes another JSON type.
    """
    if len(values) > len(header):
        return {}, {"non_field_errors": [CSV_TOO_MANY_FIELDS]}
    # An empty cell means "not given", as an absent JSON key.
    data = {name: cell for name, cell in zip(header, values, strict=False) if cell}
    errors: dict = {}
    for name in special:
        cell = data.pop(name, None)
        if cell is None:
            continue
        try:
            if name in _LIST_COLUMNS:
                data[name] = _parse_list(cell)
            elif name in _OBJECT_COLUMNS:
                parsed = json.loads(cell)
                # Not an object: passed on for the service to reject as the API would.
                data[name] = (
                    {**data.get(name, {}), **parsed}
                    if isinstance(parsed, dict)
                    else parsed
                )
            elif name.startswith(_ATTRIBUTE_PREFIX):
                key = name[len(_ATTRIBUTE_PREFIX) :]
                data.setdefault("attributes", {})[key] = _parse_scalar(cell)
            else:
                data[name] = _CELL_PARSERS[name](cell)
        except (ValueError, TypeError) as exc:
            errors[name] = [BAD_JSON_CELL.format(error=exc)]
    return data, errors


def _read_csv(lines: _CountingLines) -> Iterator[_Row]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    if not any(header):
        yield _Row(line=1, data=None, errors={"non_field_errors": [CSV_NO_HEADER]})
        return
    special = [name for name in header if _needs_conversion(name)]
    bad_lines = lines.bad_lines
    for values in reader:
        if not values or values == [""]:
            continue  # blank line
        line = reader.line_num
        if bad_lines and line in bad_lines:
            yield _Row(line=line, data=None, errors={"non_field_errors": [NOT_UTF8]})
            continue
        data, errors = _csv_row(header, special, values)
        yield _Row(line=line, data=None if errors else data, errors=errors or None)


def _read_jsonl(lines: _CountingLines) -> Iterator[_Row]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if number in lines.bad_lines:
            yield _Row(line=number, data=None, errors={"non_field_errors": [NOT_UTF8]})
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield _Row(
                line=number,
                data=None,
                errors={"non_field_errors": [NOT_JSON.format(error=exc)]},
            )
            continue
        if not isinstance(data, dict):
            yield _Row(
                line=number, data=None, errors={"non_field_errors": [NOT_OBJECT]}
            )
            continue
        yield _Row(line=number, data=data)


def _chunks(rows: Iterable[_Row], size: int) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def count_lines(stream: IO[bytes]) -> int:
    """Newlines in a stream (a cheap first pass for the row total)."""
    total = 0
    last = b""
    while chunk := stream.read(READ_CHUNK_BYTES):
        total += chunk.count(b"\n")
        last = chunk
    return total + (1 if last and not last.endswith(b"\n") else 0)


# ---------------------------------------------------------------------- running


def import_stream(
    *,
    job: ImportJob,
    stream: IO[bytes],
    chunk_rows: int | None = None,
    progress: ProgressCallback | None = None,
) -> ImportJob:
    """Import `stream` into `job`'s kind, resuming after `job.rows_done` rows.

    Rows are validated and written `chunk_rows` at a time; each chunk's write and the
    job's counters are committed together. Returns the finished job.
    """
    chunk_rows = chunk_rows or int(settings.RECSITE.get("IMPORT_CHUNK_ROWS", 5000))
    write = _writer(job.kind)
    lines = _CountingLines(stream)
    rows = (
        _read_csv(lines) if job.format == ImportJob.Format.CSV else _read_jsonl(lines)
    )
    skip = job.rows_done  # rows already committed by an earlier attempt
    errors = list(job.errors or [])
    for chunk in _chunks(rows, chunk_rows):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        chunk, skip = chunk[skip:], 0
        try:
            _write_chunk(job, chunk, write, lines.bytes_done, errors)
        except IntegrityError:
            # A user, item or type changed between lookup and insert (the chunk was
            # rolled back as a whole): the retry looks everything up again, once.
            _write_chunk(job, chunk, write, lines.bytes_done, errors)
        if progress is not None:
            progress(job)
    now = timezone.now()
    job.status = ImportJob.Status.DONE
    job.bytes_done = max(job.bytes_done, lines.bytes_done)
    if job.rows_total is None or job.rows_total != job.rows_done:
        job.rows_total = job.rows_done  # the exact count, now that it is known
    job.finished_at = now
    job.heartbeat_at = now
    job.save(
        update_fields=[
            "status",
            "bytes_done",
            "rows_total",
            "finished_at",
            "heartbeat_at",
            "updated_at",
        ]
    )
    if progress is not None:
        progress(job)
    return job


def _write_chunk(
    job: ImportJob,
    chunk: list[_Row],
    write: Callable[[list[dict]], BatchOutcome],
    bytes_done: int,
    errors: list[dict],
) -> None:
    """Write one chunk and the job's counters in one transaction (the resume point)."""
    valid = [row for row in chunk if row.data is not None]
    rejected = [(row.line, row.errors) for row in chunk if row.data is None]
    with transaction.atomic():
        outcome = (
            write([row.data for row in valid]) if valid else BatchOutcome(0, 0, [])
        )
        rejected += [(valid[index].line, errs) for index, errs in outcome.rejected]
        rejected.sort(key=lambda pair: pair[0])
        room = MAX_STORED_REJECTIONS - len(errors)
        stored = [
            {"line": line, "errors": errs} for line, errs in rejected[: max(room, 0)]
        ]
        ImportJob.objects.filter(pk=job.pk).update(
            rows_done=job.rows_done + len(chunk),
            accepted=job.accepted + outcome.accepted,
            duplicates=job.duplicates + outcome.duplicates,
            rejected=job.rejected + len(rejected),
            bytes_done=bytes_done,
            errors=errors + stored,
            heartbeat_at=timezone.now(),
            updated_at=timezone.now(),
        )
    # Only after the commit: a rolled-back chunk leaves the job as it was.
    job.rows_done += len(chunk)
    job.accepted += outcome.accepted
    job.duplicates += outcome.duplicates
    job.rejected += len(rejected)
    job.bytes_done = bytes_done
    errors += stored
    job.errors = errors


def _claim(job_id: int, *, resumed: bool) -> ImportJob | None:
    """Mark the job running here; None when another run owns it or it has ended."""
    now = timezone.now()
    stale_before = now - timedelta(
        seconds=int(settings.RECSITE.get("STALE_RUN_AFTER_S", 900))
    )
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (
            ImportJob.Status.DONE,
            ImportJob.Status.FAILED,
        ):
            return None
        alive = job.heartbeat_at is not None and job.heartbeat_at >= stale_before
        if job.status == ImportJob.Status.RUNNING and alive and not resumed:
            return None  # another worker is on it
        job.status = ImportJob.Status.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.save(update_fields=["status", "started_at", "heartbeat_at", "updated_at"])
    return job


def import_job_fail(*, job_id: int, error: str) -> None:
    """Mark a queued or running import failed with `error`; ended ones stay."""
    now = timezone.now()
    ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ).update(
        status=ImportJob.Status.FAILED,
        error=error[:5000],
        finished_at=now,
        updated_at=now,
    )


def _fail(job: ImportJob, exc: BaseException) -> None:
    import_job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")


def import_job_run(
    *, job_id: int, resumed: bool = False, progress: ProgressCallback | None = None
) -> ImportJob | None:
    """Run an uploaded import job from storage (the Celery task's service).

    Returns None when there is nothing to do (finished, failed, or running
    elsewhere). Transient database errors propagate for the task to retry (the job
    resumes after its last committed chunk); any other error fails the job.
    """
    from django.db import InterfaceError, OperationalError

    job = _claim(job_id, resumed=resumed)
    if job is None:
        return None
    try:
        if job.rows_total is None:
            with job.file.open("rb") as stream:
                total = count_lines(stream)
            job.rows_total = max(
                total - (1 if job.format == ImportJob.Format.CSV else 0), 0
            )
            job.bytes_total = job.file.size
            job.save(update_fields=["rows_total", "bytes_total", "updated_at"])
        with job.file.open("rb") as stream:
            return import_stream(job=job, stream=stream, progress=progress)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        logger.exception("import %s failed", job.pk)
        _fail(job, exc)
        job.refresh_from_db()
        return job


def import_job_create(*, kind: str, file: File, format: str | None = None) -> ImportJob:
    """Store an uploaded file and queue its import (the task is sent on commit)."""
    if kind not in ImportJob.Kind.values:
        raise ValueError(f"unknown import kind {kind!r}")
    name = os.path.basename(getattr(file, "name", "") or "upload")
    fmt = import_format_for(filename=name, format=format)
    with transaction.atomic():
        job = ImportJob(kind=kind, format=fmt, original_name=name[:255])
        job.bytes_total = file.size or 0
        job.file.save(name, file, save=False)
        job.save()
        transaction.on_commit(partial(_send_import, job.pk))
    return job


def _send_import(job_id: int) -> bool:
    """Send the import task; with the broker down the job stays queued (re-sent later)."""
    from recommendations.tasks import import_file_task

    try:
        import_file_task.delay(job_id)
    except Exception:  # noqa: BLE001 - any broker failure: keep it queued, never raise
        logger.warning(
            "could not enqueue import %s; it stays queued and the reaper sends it "
            "again",
            job_id,
            exc_info=True,
        )
        return False
    return True


def import_jobs_resend_stranded(*, now=None) -> list[int]:
    """Send again the imports still queued, unstarted, after RESEND_QUEUED_AFTER_S.

    Their message was lost (broker down when they were created, or a flushed
    queue). The claim in `import_job_run` makes a duplicate message harmless.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(
        seconds=int(settings.RECSITE.get("RESEND_QUEUED_AFTER_S", 120))
    )
    stranded = ImportJob.objects.filter(
        status=ImportJob.Status.QUEUED, started_at__isnull=True, updated_at__lt=cutoff
    ).values_list("id", flat=True)
    resent = []
    for pk in stranded:
        if _send_import(pk):
            ImportJob.objects.filter(pk=pk, status=ImportJob.Status.QUEUED).update(
                updated_at=now
            )
            resent.append(pk)
    return resent


def import_local_file(
    *,
    kind: str,
    path: str | os.PathLike,
    format: str | None = None,
    chunk_rows: int | None = None,
    progress: ProgressCallback | None = None,
) -> ImportJob:
    """Import a local file in this process (`import_file`); recorded as a job."""
    path = Path(path)
    if kind not in ImportJob.Kind.values:
        raise ValueError(f"unknown import kind {kind!r}")
    fmt = import_format_for(filename=path.name, format=format)
    now = timezone.now()
    job = ImportJob.objects.create(
        kind=kind,
        format=fmt,
        original_name=str(path)[:255],
        status=ImportJob.Status.RUNNING,
        bytes_total=path.stat().st_size,
        started_at=now,
        heartbeat_at=now,
    )
    try:
        with path.open("rb") as stream:
            return import_stream(
                job=job, stream=stream, chunk_rows=chunk_rows, progress=progress
            )
    except BaseException as exc:
        _fail(job, exc)
        raise


def import_jobs_reap_stale(*, now=None) -> list[int]:
    """Mark failed the running imports whose heartbeat is stale (worker killed)."""
    now = now or timezone.now()
    cutoff = now - timedelta(
        seconds=int(settings.RECSITE.get("STALE_RUN_AFTER_S", 900))
    )
    reaped = []
    stale = ImportJob.objects.filter(
        status=ImportJob.Status.RUNNING, heartbeat_at__lt=cutoff
    )
    for pk, heartbeat_at, rows_done in stale.values_list(
        "id", "heartbeat_at", "rows_done"
    ):
        error = WORKER_LOST.format(since=heartbeat_at.isoformat(), rows=rows_done)
        if ImportJob.objects.filter(
            pk=pk, status=ImportJob.Status.RUNNING, heartbeat_at=heartbeat_at
        ).update(
            status=ImportJob.Status.FAILED, error=error, finished_at=now, updated_at=now
        ):
            reaped.append(pk)
    return reaped


def import_files_prune(*, older_than_days: int | None = None, now=None) -> int:
    """Delete stored uploads of imports that ended long ago (the job rows stay)."""
    now = now or timezone.now()
    if older_than_days is None:
        older_than_days = int(settings.RECSITE.get("PRUNE_FAILED_AFTER_DAYS", 14))
    old = ImportJob.objects.filter(
        status__in=[ImportJob.Status.DONE, ImportJob.Status.FAILED],
        finished_at__lt=now - timedelta(days=older_than_days),
    ).exclude(file="")
    deleted = 0
    for job in old.only("id", "file"):
        job.file.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(file="", updated_at=now)
        deleted += 1
    return deleted
