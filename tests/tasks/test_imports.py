"""Bulk file imports: streaming, rejection reports, resume, the API with a worker."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from items.models import Item
from recommendations.models import ImportJob, Interaction
from recommendations.services import imports
from recommendations.services.imports import (
    CSV_TOO_MANY_FIELDS,
    NOT_JSON,
    NOT_OBJECT,
    UNKNOWN_FORMAT,
    import_files_prune,
    import_job_run,
    import_jobs_reap_stale,
    import_local_file,
)
from recommendations.services.interactions import UNKNOWN_ITEM, VALUE_INVALID
from recsite.validation import ID_EMPTY, REQUIRED, UNKNOWN_FIELD
from tests.factories import ItemFactory
from tests.tasks.conftest import wait_for
from users.models import EndUser

INTERACTIONS_CSV = """user,item,type,value,timestamp,event_id
u1,i1,view,,2024-01-01T00:00:00Z,e1
u1,i2,rating,4.5,1704067200,e2
u2,i1,purchase,,,e1
u3,nope,view,,,
u3,i1,view,lots,,
u4,i2,view,,,,extra
"""


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def catalog(db):
    return [ItemFactory(external_id="i1"), ItemFactory(external_id="i2")]


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.django_db
def test_csv_import_counts_and_reports_rejected_rows_with_lines(catalog, tmp_path):
    job = import_local_file(
        kind="interactions", path=_write(tmp_path, "events.csv", INTERACTIONS_CSV)
    )

    assert job.status == ImportJob.Status.DONE
    assert (job.rows_done, job.accepted, job.duplicates, job.rejected) == (6, 2, 1, 3)
    assert job.errors == [
        {"line": 5, "errors": {"item": [UNKNOWN_ITEM.format(id="nope")]}},
        {"line": 6, "errors": {"value": [VALUE_INVALID]}},
        {"line": 7, "errors": {"non_field_errors": [CSV_TOO_MANY_FIELDS]}},
    ]
    assert Interaction.objects.count() == 2
    rating = Interaction.objects.get(event_id="e2")
    assert rating.value == 4.5 and rating.timestamp.year == 2024
    assert job.bytes_done == job.bytes_total == len(INTERACTIONS_CSV.encode())


@pytest.mark.django_db
def test_jsonl_import_reports_bad_lines(tmp_path):
    lines = [
        json.dumps({"id": "u1", "attributes": {"age": 31}}),
        json.dumps({"id": ""}),
        "{not json",
        "",
        "[1, 2]",
        json.dumps({"id": "u2", "nickname": "x"}),
        json.dumps({"attributes": {}}),
        json.dumps({"id": "u3"}),
    ]
    job = import_local_file(
        kind="users", path=_write(tmp_path, "u.jsonl", "\n".join(lines))
    )

    assert (job.rows_done, job.accepted, job.rejected) == (7, 2, 5)
    by_line = {entry["line"]: entry["errors"] for entry in job.errors}
    assert by_line[2] == {"id": [ID_EMPTY]}
    assert by_line[3]["non_field_errors"][0].startswith(NOT_JSON.split("{")[0])
    assert by_line[5] == {"non_field_errors": [NOT_OBJECT]}
    assert by_line[6] == {"nickname": [UNKNOWN_FIELD]}
    assert by_line[7] == {"id": [REQUIRED]}
    assert EndUser.objects.get(external_id="u1").attributes == {"age": 31}
    assert EndUser.objects.filter(external_id="u3").exists()


@pytest.mark.django_db
def test_items_csv_maps_lists_attributes_and_booleans(tmp_path):
    text = (
        "id,title,categories,tags,attributes.price,attributes.brand,is_hidden\n"
        "i1,First,books|scifi,new,10,acme,false\n"
        'i2,Second,"[""books""]",,12.5,,TRUE\n'
        "i3,Third,,,,,maybe\n"
    )
    job = import_local_file(kind="items", path=_write(tmp_path, "items.csv", text))

    assert (job.accepted, job.rejected) == (2, 1)
    assert job.errors[0]["line"] == 4 and "is_hidden" in job.errors[0]["errors"]
    first = Item.objects.get(external_id="i1")
    assert sorted(first.categories.values_list("name", flat=True)) == ["books", "scifi"]
    assert first.attributes == {"price": 10, "brand": "acme"}
    assert not first.is_hidden
    assert Item.objects.get(external_id="i2").is_hidden


@pytest.mark.django_db
def test_only_the_first_rejections_are_kept_but_counts_are_exact(tmp_path, settings):
    text = "id,title\n" + "".join(f",bad {n}\n" for n in range(150)) + "ok,fine\n"
    job = import_local_file(
        kind="items", path=_write(tmp_path, "i.csv", text), chunk_rows=40
    )

    assert (job.rows_done, job.accepted, job.rejected) == (151, 1, 150)
    assert len(job.errors) == imports.MAX_STORED_REJECTIONS
    assert [e["line"] for e in job.errors] == list(range(2, 102))


@pytest.mark.django_db
def test_a_run_interrupted_by_a_database_error_resumes_without_duplicates(
    catalog, media, monkeypatch, settings
):
    rows = "".join(f"user-{n},i{n % 2 + 1},view,,,\n" for n in range(10))
    header = "user,item,type,value,timestamp,event_id\n"
    upload = SimpleUploadedFile("events.csv", (header + rows).encode())
    job = ImportJob(kind="interactions", format="csv", original_name="events.csv")
    job.file.save("events.csv", upload)
    settings.RECSITE = {**settings.RECSITE, "IMPORT_CHUNK_ROWS": 4}
    real_writer = imports._writer
    calls = {"n": 0}

    def failing_writer(kind):
        write = real_writer(kind)

        def wrapped(batch):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OperationalError("the database went away")
            return write(batch)

        return wrapped

    monkeypatch.setattr(imports, "_writer", failing_writer)
    with pytest.raises(OperationalError):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.accepted) == (ImportJob.Status.RUNNING, 4, 4)

    # The task's retry: resumes after the committed chunk.
    job = import_job_run(job_id=job.pk, resumed=True)
    assert (job.status, job.rows_done, job.accepted, job.rejected) == (
        "done",
        10,
        10,
        0,
    )
    assert Interaction.objects.count() == 10
    # A redelivered message of the finished job does nothing.
    assert import_job_run(job_id=job.pk) is None
    assert Interaction.objects.count() == 10


# ------------------------------------------------------------------------ the API


@pytest.mark.django_db
def test_imports_need_a_write_key(read_only_client, public_client, anon_client, media):
    url = reverse("import-job-list")
    upload = SimpleUploadedFile("u.csv", b"id\nu1\n")
    assert read_only_client.get(url).status_code == 403
    assert (
        read_only_client.post(url, {"kind": "users", "file": upload}).status_code == 403
    )
    assert public_client.get(url).status_code == 403
    assert anon_client.get(url).status_code == 401


@pytest.mark.django_db
def test_upload_with_unknown_format_is_a_field_error(api_client, media):
    upload = SimpleUploadedFile("users.txt", b"id\nu1\n")
    response = api_client.post(
        reverse("import-job-list"), {"kind": "users", "file": upload}
    )
    assert response.status_code == 400
    assert response.json() == {"format": [UNKNOWN_FORMAT]}

    upload = SimpleUploadedFile("users.txt", b"id\nu1\n")
    response = api_client.post(
        reverse("import-job-list"), {"kind": "users", "file": upload, "format": "csv"}
    )
    assert response.status_code == 202
    assert response.json()["format"] == "csv"


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_before_it_is_stored(
    api_client, media, settings
):
    settings.RECSITE = {**settings.RECSITE, "IMPORT_MAX_UPLOAD_BYTES": 1000}
    upload = SimpleUploadedFile("users.csv", b"id\n" + b"u\n" * 2000)
    response = api_client.post(
        reverse("import-job-list"), {"kind": "users", "file": upload}
    )
    assert response.status_code == 413
    assert "manage.py import_file" in response.json()["detail"]
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_unknown_import_is_404(api_client):
    url = reverse("import-job-detail", args=["00000000-0000-0000-0000-000000000000"])
    assert api_client.get(url).status_code == 404


def _wait_for_job(client, job_id: str) -> dict:
    """Poll the job's page until the worker has finished it (done or failed)."""
    url = reverse("import-job-detail", args=[job_id])
    last: dict = {}

    def finished():
        last.update(client.get(url).json())
        return dict(last) if last["status"] in ("done", "failed") else None

    try:
        return wait_for(finished, timeout=60, what="the import job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None


@pytest.mark.django_db(transaction=True)
def test_upload_is_imported_by_the_worker_end_to_end(api_client, media, celery_worker):
    ItemFactory(external_id="i1")
    ItemFactory(external_id="i2")
    upload = SimpleUploadedFile("events.csv", INTERACTIONS_CSV.encode(), "text/csv")

    response = api_client.post(
        reverse("import-job-list"), {"kind": "interactions", "file": upload}
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "interactions"
    job = _wait_for_job(api_client, body["id"])
    assert job["status"] == "done", job["error"]
    assert (job["accepted"], job["duplicates"], job["rejected"]) == (2, 1, 3)
    assert job["progress"] == {
        "bytes_done": len(INTERACTIONS_CSV.encode()),
        "bytes_total": len(INTERACTIONS_CSV.encode()),
        "rows_done": 6,
        "rows_total": 6,
        "percent": 100.0,
    }
    assert job["rejected_rows"][0] == {
        "line": 5,
        "errors": {"item": [UNKNOWN_ITEM.format(id="nope")]},
    }
    listed = api_client.get(reverse("import-job-list")).json()
    assert [entry["id"] for entry in listed["results"]] == [body["id"]]
    assert "rejected_rows" not in listed["results"][0]
    assert Interaction.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_jsonl_upload_of_items_end_to_end(api_client, media, celery_worker):
    lines = [
        {"id": "a", "title": "A", "categories": ["x"]},
        {"id": "b", "title": 5},
        {"id": "c", "attributes": {"colour": "red"}},
    ]
    upload = SimpleUploadedFile(
        "items.jsonl", "\n".join(json.dumps(line) for line in lines).encode()
    )
    response = api_client.post(
        reverse("import-job-list"), {"kind": "items", "file": upload}
    )
    assert response.status_code == 202
    job = _wait_for_job(api_client, response.json()["id"])
    assert job["status"] == "done", job["error"]
    assert (job["accepted"], job["rejected"]) == (2, 1)
    assert job["rejected_rows"][0]["line"] == 2
    assert set(Item.objects.values_list("external_id", flat=True)) == {"a", "c"}


@pytest.mark.django_db
def test_stale_running_import_is_reaped_and_old_uploads_are_pruned(media, settings):
    settings.RECSITE = {**settings.RECSITE, "STALE_RUN_AFTER_S": 60}
    long_ago = timezone.now() - timedelta(minutes=5)
    stuck = ImportJob.objects.create(
        kind="users",
        format="csv",
        status="running",
        heartbeat_at=long_ago,
        rows_done=5000,
    )
    alive = ImportJob.objects.create(
        kind="users", format="csv", status="running", heartbeat_at=timezone.now()
    )
    assert import_jobs_reap_stale() == [stuck.pk]
    stuck.refresh_from_db()
    alive.refresh_from_db()
    assert stuck.status == "failed" and "5000 rows were imported" in stuck.error
    assert alive.status == "running"
    # A redelivered message of the reaped job does nothing.
    assert import_job_run(job_id=stuck.pk) is None

    old = ImportJob(kind="users", format="csv", status="done")
    old.file.save("old.csv", SimpleUploadedFile("old.csv", b"id\nu1\n"), save=False)
    old.finished_at = timezone.now() - timedelta(days=30)
    old.save()
    stored = old.file.path
    assert import_files_prune(older_than_days=14) == 1
    old.refresh_from_db()
    assert old.file.name == "" and old.status == "done"
    assert not Path(stored).exists()
