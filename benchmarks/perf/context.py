"""Shared state of one benchmark run: scale, paths, environment, progress output."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCALES = {
    # name: users, items, interactions, model dim, fixed epochs, load seconds per run
    "tiny": dict(
        users=200, items=200, interactions=2_000, dim=8, epochs=2, seconds=1.5
    ),
    "default": dict(
        users=100_000,
        items=100_000,
        interactions=1_000_000,
        dim=64,
        epochs=10,
        seconds=15.0,
    ),
    "large": dict(
        users=1_000_000,
        items=100_000,
        interactions=10_000_000,
        dim=64,
        epochs=10,
        seconds=15.0,
    ),
}
SECTION_KEYS = (
    "ingest",
    "extract",
    "train",
    "serve",
    "similar",
    "floor",
    "memory",
    "large",
)
# Users of the model behind the memory target (1,000,000 users x 100,000 items).
MEMORY_MODEL_USERS = 1_000_000
MEMORY_MODEL_ITEMS = 100_000


@dataclass
class Scale:
    """Sizes of one run."""

    name: str
    users: int
    items: int
    interactions: int
    dim: int
    epochs: int
    seconds: float

    def as_dict(self) -> dict:
        """For the report."""
        return dict(self.__dict__)


@dataclass
class Context:
    """Everything the phases share."""

    scale: Scale
    sections: tuple[str, ...]
    db_name: str
    db_url: str
    work_dir: Path
    log_path: Path
    output: Path
    results_json: Path
    connections: int = 16
    ingest_clients: int = 4
    batch_size: int = 1_000
    train_threads: int = 2
    # pipeline and bare fit each run this many times, alternately; best of each
    train_repeats: int = 2
    with_search: bool = True
    search_budget_s: float = 300.0
    keep_db: bool = False
    reuse_db: bool = False
    seed: int = 0
    results: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    # filled in as the run goes
    log: object = None  # synthetic.InteractionLog
    user_pks: object = None  # numpy int64, index -> pk
    item_pks: object = None
    type_pks: dict = field(default_factory=dict)
    write_key: str = ""
    read_key: str = ""

    def say(self, message: str) -> None:
        """Progress on stdout, with the elapsed time."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f}s] {message}", flush=True)

    def wants(self, section: str) -> bool:
        """True when this section was asked for (--only)."""
        return section in self.sections

    def django_env(self, **extra: str) -> dict[str, str]:
        """Environment of every Django process of the run (server, children)."""
        return django_env(self.db_url, self.db_name, self.work_dir, **extra)

    def child_cmd(self, *args: str) -> list[str]:
        """Command line that re-enters run.py as a child process."""
        return [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--db",
            self.db_name,
            "--work-dir",
            str(self.work_dir),
            *args,
        ]


def django_env(
    db_url: str, db_name: str, work_dir: Path, **extra: str
) -> dict[str, str]:
    """Environment of a benchmark's Django processes: its own database, artifacts and
    cache prefix, DEBUG off, one BLAS thread, rate limits out of the way."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="recsite.settings.base",
        SECRET_KEY=env.get(
            "BENCH_SECRET_KEY", "benchmark-only-secret-key-0123456789abcdef"
        ),
        DEBUG="0",
        DATABASE_URL=db_url,
        ARTIFACTS_DIR=str(work_dir / "artifacts"),
        ARTIFACTS_CACHE_DIR=str(work_dir / "artifact-cache"),
        STATIC_ROOT=str(work_dir / "static"),
        CACHE_KEY_PREFIX=f"bench-{db_name}",
        # The benchmark measures the API, not the rate limiter's refusals (the
        # limiter still runs: one Redis round-trip per request, as in production).
        THROTTLE_WRITE="100000000/min",
        THROTTLE_READ_ONLY="100000000/min",
        THROTTLE_PUBLIC="100000000/min",
        THROTTLE_STAFF="100000000/min",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        LOG_LEVEL="WARNING",
        SERVING_REFRESH_S="1",
        CELERY_TASK_ALWAYS_EAGER="0",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def setup_django_for(db_name: str) -> None:
    """Django in this process against a kept benchmark database (`run.py --keep-db`),
    with the benchmark server's settings: for the narrow profiling scripts."""
    from benchmarks.perf import db

    work = ROOT / ".local" / "bench" / db_name
    (work / "static").mkdir(parents=True, exist_ok=True)
    os.environ.update(django_env(db.bench_url(db_name), db_name, work))
    import django

    django.setup()
