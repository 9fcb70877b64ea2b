"""Benchmark `manage.py import_file`: rows/s and peak memory on a big interactions CSV.

Generates a synthetic catalog and interaction log (recommendations/engine/synthetic),
writes items.csv and interactions.csv, creates a fresh database, imports the items,
then imports the interactions file (and, to show memory does not grow with the file,
the first fraction of it into another fresh database) in a child process whose
resident memory is sampled every 0.1 s with psutil.

    .venv/bin/python benchmarks/import_file.py --rows 1000000
    .venv/bin/python benchmarks/import_file.py --rows 1000000 --event-ids

Needs a PostgreSQL server (DATABASE_URL's, default 127.0.0.1:5432) on which it may
create and drop the databases `recsite_bench_import_*`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommendations.engine.synthetic import generate  # noqa: E402

BASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/recsite"
)


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(BASE_URL)._replace(path=f"/{name}"))


def _admin_sql(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(_database_url("postgres"))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
    connection.close()


def fresh_database(name: str) -> str:
    """Drop and create database `name`, migrate it; return its URL."""
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_sql(f'CREATE DATABASE "{name}"')
    url = _database_url(name)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        env=_env(url),
        check=True,
    )
    return url


def _env(url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "benchmark-only"),
        "DJANGO_SETTINGS_MODULE": "recsite.settings.base",
        "LOG_LEVEL": "WARNING",
    }


def write_files(
    directory: Path, rows: int, event_ids: bool, seed: int
) -> tuple[Path, Path]:
    """items.csv and interactions.csv of a synthetic data set of `rows` interactions."""
    n_items = max(1000, rows // 50)
    n_users = max(1000, rows // 10)
    log = generate(n_users=n_users, n_items=n_items, n_interactions=rows, seed=seed)
    items_path = directory / "items.csv"
    with items_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "categories", "tags", "attributes"])
        for item in log.items:
            writer.writerow(
                [
                    item["id"],
                    item["title"],
                    "|".join(item["categories"]),
                    "|".join(item["tags"]),
                    _json(item["attributes"]),
                ]
            )
    item_ids = [str(item["id"]) for item in log.items]
    user_ids = [str(user["id"]) for user in log.users]
    # Shift the log so it ends now: "trending" then has a realistic last week.
    timestamp = log.timestamp + (time.time() - float(log.timestamp.max()))
    stamps = np.datetime_as_string(
        (timestamp * 1e6).astype(np.int64).astype("datetime64[us]"), unit="s"
    )
    interactions_path = directory / "interactions.csv"
    with interactions_path.open("w", newline="", encoding="utf-8") as handle:
        header = ["user", "item", "type", "value", "timestamp"]
        if event_ids:
            header.append("event_id")
        handle.write(",".join(header) + "\n")
        lines = []
        for n in range(len(log.user_index)):
            value = log.value[n]
            line = (
                f"{user_ids[log.user_index[n]]},{item_ids[log.item_index[n]]},"
                f"{log.type_names[log.type_index[n]]},"
                f"{'' if value != value else f'{value:g}'},{stamps[n]}Z"
            )
            if event_ids:
                line += f",ev-{n}"
            lines.append(line + "\n")
            if len(lines) == 100_000:
                handle.writelines(lines)
                lines = []
        handle.writelines(lines)
    return items_path, interactions_path


def _json(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def run_import(url: str, kind: str, path: Path) -> dict:
    """Run `manage.py import_file` in a child process; wall time and RSS samples."""
    command = [
        sys.executable,
        "manage.py",
        "import_file",
        kind,
        str(path),
        "--no-progress",
    ]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=ROOT, env=_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process = psutil.Process(child.pid)
    samples: list[tuple[float, int]] = []
    while child.poll() is None:
        try:
            rss = process.memory_info().rss
        except psutil.NoSuchProcess:
            break
        if rss:  # 0 once the child has exited (a zombie)
            samples.append((time.perf_counter() - started, rss))
        time.sleep(0.1)
    stdout, stderr = child.communicate()
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"import_file failed:\n{stderr.decode()[-3000:]}")
    rss = [value for _, value in samples]
    return {
        "seconds": elapsed,
        "output": stdout.decode().strip().splitlines()[0],
        "peak_rss_mb": max(rss) / 2**20 if rss else float("nan"),
        # RSS at 25/50/75/100 % of the run: flat when memory does not grow with rows.
        "rss_quartiles_mb": [
            samples[min(len(samples) - 1, int(len(samples) * q))][1] / 2**20
            for q in (0.25, 0.5, 0.75, 0.999)
        ]
        if samples
        else [],
    }


_POPULARITY_PROBE = """
import time
from datetime import timedelta
from django.utils import timezone
from recommendations.selectors.serving import popular_item_scores
from recommendations.services.maintenance import popularity_cached, popularity_refresh
now = timezone.now()
for label, options in (("popular", {}), ("trending", {"trending": True})):
    best = min(
        (lambda t0: (popular_item_scores(limit=512, now=now, **options),
                     time.perf_counter() - t0)[1])(time.perf_counter())
        for _ in range(3)
    )
    print(f"{label}_query_ms={best * 1000:.0f}")
t0 = time.perf_counter(); popularity_refresh(); refresh = time.perf_counter() - t0
t0 = time.perf_counter(); popularity_cached(); read = time.perf_counter() - t0
print(f"refresh_ms={refresh * 1000:.0f}")
print(f"cached_read_ms={read * 1000:.1f}")
"""


def probe_popularity(url: str) -> dict:
    """Serving's popularity queries on the imported data vs the precomputed lists."""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _POPULARITY_PROBE],
        cwd=ROOT,
        env=_env(url),
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return (
            sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
            - 1
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--event-ids", action="store_true", help="Give every row an event_id."
    )
    parser.add_argument(
        "--fraction",
        type=float,
        default=0.25,
        help="Also import this first fraction of the file, to compare peak memory.",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--keep", action="store_true", help="Keep the databases and files."
    )
    args = parser.parse_args()

    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    with tempfile.TemporaryDirectory(prefix="recsite-import-bench-") as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        items_path, interactions_path = write_files(
            directory, args.rows, args.event_ids, args.seed
        )
        print(
            f"generated {args.rows:,} interactions "
            f"({interactions_path.stat().st_size / 2**20:.1f} MiB) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        part_path = directory / "interactions-part.csv"
        part_rows = int(args.rows * args.fraction)
        with interactions_path.open("rb") as source, part_path.open("wb") as target:
            for n, line in enumerate(source):
                if n > part_rows:
                    break
                target.write(line)

        results = []
        for label, path in (("full", interactions_path), ("part", part_path)):
            name = f"recsite_bench_import_{label}"
            url = fresh_database(name)
            items = run_import(url, "items", items_path)
            result = run_import(url, "interactions", path)
            result["rows"] = _count_rows(path)
            result["rows_per_s"] = result["rows"] / result["seconds"]
            result["label"] = label
            result["items"] = items
            if label == "full":
                result["popularity"] = probe_popularity(url)
            results.append(result)
            print(f"{label}: {result['output']}")
            if not args.keep:
                _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print()
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
        f"{dt.date.today().isoformat()}; event ids: {args.event_ids}; "
        f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| file | rows | wall s | rows/s | peak RSS MiB | RSS at 25/50/75/100 % (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in results:
        quartiles = " / ".join(f"{v:.0f}" for v in r["rss_quartiles_mb"])
        print(
            f"| interactions ({r['label']}) | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | {quartiles} |"
        )
    print()
    print(f"popularity on the full data set (ms): {results[0]['popularity']}")
    items = results[0]["items"]
    print(
        f"| items (catalog, before) | - | {items['seconds']:.1f} | - | "
        f"{items['peak_rss_mb']:.0f} | |"
    )


if __name__ == "__main__":
    main()
