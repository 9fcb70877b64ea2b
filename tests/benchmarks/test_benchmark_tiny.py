"""`benchmarks/run.py` end to end at a tiny scale, so the benchmark cannot rot.

The full-scale run is not part of the suite (it takes minutes to an hour); this checks
that every phase still runs against the real code paths and that the report has all its
sections (the seven targets and the serving floor) with figures, not errors.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.perf.db import database_exists
from benchmarks.perf.report import SECTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_benchmark_writes_a_report_with_all_sections(tmp_path):
    report = tmp_path / "benchmarks.md"
    db_name = f"recsite_bench_test_{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}

    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            "--scale",
            "tiny",
            "--db",
            db_name,
            "--output",
            str(report),
            "--results-dir",
            str(tmp_path),
            "--work-dir",
            str(tmp_path / "work"),
            "--seconds",
            "1",
            "--no-search",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = report.read_text()
    for _, title in SECTIONS:
        assert f"## {title}" in text
    assert "CPUs (" in text and "Command: `benchmarks/run.py --scale tiny" in text
    results = json.loads((tmp_path / "tiny.json").read_text())
    failed = {
        k: results[k]
        for k, _ in SECTIONS
        if results.get(k, {}).get("status") == "error"
    }
    assert not failed, failed
    # the phases whose code exists measured something next to a baseline
    for key in ("ingest", "extract", "train"):
        assert results[key]["status"] == "ok", results[key]
        assert results[key]["rows"], results[key]
    # training: pipeline and bare fit ran twice each; the ratio uses the best of each
    raw = results["train"]["raw"]
    assert len(raw["runs"]) == 2
    assert abs(raw["bare_fit_s"] - min(r["bare_fit_s"] for r in raw["runs"])) < 0.01
    assert abs(raw["pipeline_s"] - min(r["pipeline_s"] for r in raw["runs"])) < 0.01
    # sections 4 and 5 carry a profile of their endpoint's requests
    for key, view in (("serve", "recommend_for_user"), ("similar", "similar_items")):
        profile = results[key].get("profile", "")
        assert "recommendations/serving.py" in profile and view in profile, key
        assert "psycopg2" in profile, key
    assert "Profile (top of the hot path):" in text
    # the memory section leaves the served (trained) version active, not its copy
    assert results["memory"]["active_after"] == results["memory"]["served_version"]
    # ... and drops the users it grafted, so a kept database trains on the run's data
    assert results["memory"]["grafted_users_left"] == 0
    # the serving floor: every layer answered under load, with no refusals (the probe
    # before the load checked the status and the body), at both connection counts
    floor = results["floor"]
    assert floor["status"] == "ok", floor
    assert list(floor["raw"]) == [
        "wsgi",
        "django",
        "drf",
        "drf+auth",
        "drf+auth+throttle",
    ]
    for layer, raw in floor["raw"].items():
        measured = [*raw["runs"], raw["two_connections"]]
        assert all(r["rps"] > 0 and r["bad"] == 0 for r in measured), (layer, raw)
    assert "| 4. `drf+auth+throttle`: " in text
    assert "… at 2 connections (one per worker, no queueing): `wsgi`" in text
    if results["serve"]["status"] == "ok":  # shown next to the same run's endpoints
        assert "| section 4, same run: GET /api/v1/users/{id}/recommendations/" in text
    assert not database_exists(db_name)  # the benchmark drops its own database
