"""The benchmark's own PostgreSQL database: created, migrated and dropped by it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/recsite"
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def server_url() -> str:
    """The project's DATABASE_URL (the benchmark uses another database there)."""
    return os.environ.get("DATABASE_URL") or DEFAULT_URL


def bench_url(name: str) -> str:
    """DATABASE_URL of the benchmark database `name` on the same server."""
    if not NAME_RE.match(name):
        raise ValueError(f"bad database name {name!r}")
    parts = urlsplit(server_url())
    return urlunsplit(parts._replace(path=f"/{name}"))


def dsn(url: str) -> str:
    """A libpq DSN from a postgresql:// URL (dj-database-url keeps the same fields)."""
    import dj_database_url

    cfg = dj_database_url.parse(url)
    parts = {
        "dbname": cfg["NAME"],
        "user": cfg.get("USER") or "postgres",
        "password": cfg.get("PASSWORD") or "",
        "host": cfg.get("HOST") or "",
        "port": str(cfg.get("PORT") or ""),
    }
    return " ".join(f"{k}='{v}'" for k, v in parts.items() if v)


def _admin_conn():
    """Autocommit connection to the server's maintenance database."""
    conn = psycopg2.connect(dsn(bench_url("postgres")))
    conn.autocommit = True
    return conn


def drop_database(name: str) -> None:
    """DROP DATABASE IF EXISTS (forcing other sessions off)."""
    conn = _admin_conn()
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
    finally:
        conn.close()


def create_database(name: str) -> None:
    """A fresh, empty database (dropped first if it exists)."""
    drop_database(name)
    conn = _admin_conn()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def database_exists(name: str) -> bool:
    """True when the database exists on the server."""
    conn = _admin_conn()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cur.fetchone() is not None
    finally:
        conn.close()


def migrate(env: dict[str, str], log_path: Path) -> None:
    """`manage.py migrate` against the benchmark database."""
    with open(log_path, "ab") as log:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )


def connect(url: str):
    """A plain psycopg2 connection to the benchmark database (baselines, counts)."""
    return psycopg2.connect(dsn(url))


def scalar(url: str, query: str, params: list | None = None):
    """Run one statement (autocommit) and return the first column of the first row."""
    conn = connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query, params or [])
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def analyze(url: str) -> float:
    """ANALYZE the whole database; returns seconds.

    Autovacuum would do this within a minute or so of a bulk load on a default server
    (this machine's server runs with autovacuum off), and plans depend on it.
    """
    import time

    started = time.perf_counter()
    scalar(url, "ANALYZE; SELECT 1")
    return time.perf_counter() - started
