"""Where a 1,000-row `POST /api/v1/interactions/` batch spends its CPU.

Creates its own database (dropped at the end unless --keep), loads users and items
in bulk, then feeds the same 1,000-row batches through

  service  `interaction_record_many` in this process: web-side Python CPU, the
           PostgreSQL backend's CPU per statement (+ COMMIT, where deferred foreign
           key checks run) and WAL bytes;
  api      the whole view stack in-process (DRF parsing, auth, throttle, JSON
           response) through Django's test client, same rows, as JSON bodies;
  copy     a raw COPY of the same rows (pks resolved) into a copy of the table with
           the same indexes and foreign keys (the benchmark's baseline);
  http     optional (--http): gunicorn with 2 sync workers, `--clients` concurrent
           clients (wrk when installed), events/s plus total CPU of the workers and
           of their PostgreSQL backends.

CPU is read from /proc/<pid>/schedstat (ns on CPU), which a busy machine does not
inflate the way it inflates wall time. WAL is pg_current_wal_lsn() before/after, a
server-wide counter: other databases writing at the same time inflate it (the
minimum over rounds is reported alongside the median).

    .venv/bin/python benchmarks/ingest_profile.py --batches 100 --rounds 3
    .venv/bin/python benchmarks/ingest_profile.py --batches 100 --http
    .venv/bin/python benchmarks/ingest_profile.py --explain   # EXPLAIN one INSERT

`--experiment NAME` (repeatable) applies a schema change to this database only
and measures the service again afterwards (see EXPERIMENTS).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perf import db  # noqa: E402
from benchmarks.perf.context import django_env  # noqa: E402

TABLE = "recommendations_interaction"
COPY_TABLE = "ingest_profile_copy"


def env_for(db_name: str, work_dir: Path) -> dict[str, str]:
    """Environment of every Django process of the run (as benchmarks/run.py's)."""
    return django_env(db.bench_url(db_name), db_name, work_dir)


def cpu_ns(pid: int) -> int:
    """Nanoseconds process `pid` (all its threads) has spent on a CPU."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except FileNotFoundError:
            pass
    return total


def own_cpu_ns() -> int:
    """This process's CPU time in ns (user + system)."""
    return time.process_time_ns()


class Probe:
    """CPU of this process and of one PostgreSQL backend, plus server WAL."""

    def __init__(self, backend_pid: int, lsn_conn) -> None:
        self.backend_pid = backend_pid
        self.lsn_conn = lsn_conn

    def lsn(self) -> int:
        with self.lsn_conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            return int(cur.fetchone()[0])

    def read(self) -> tuple[int, int, int, float]:
        return (own_cpu_ns(), cpu_ns(self.backend_pid), self.lsn(), time.perf_counter())


class StatementClock:
    """`connection.execute_wrapper`: backend and client ns per kind of statement."""

    def __init__(self, backend_pid: int) -> None:
        self.backend_pid = backend_pid
        self.backend: dict[str, int] = defaultdict(int)
        self.client: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    @staticmethod
    def label(sql: str) -> str:
        words = sql.split()
        verb = words[0].upper() if words else "?"
        for marker in ("INTO", "FROM", "JOIN"):
            if marker in words:
                target = words[words.index(marker) + 1]
                if target.startswith("unnest") and "JOIN" in words:
                    target = words[words.index("JOIN") + 1]
                return verb + " " + target.strip('"')
        return verb

    def __call__(self, execute, sql, params, many, context):
        key = self.label(sql)
        c0, b0 = own_cpu_ns(), cpu_ns(self.backend_pid)
        try:
            return execute(sql, params, many, context)
        finally:
            self.backend[key] += cpu_ns(self.backend_pid) - b0
            self.client[key] += own_cpu_ns() - c0
            self.calls[key] += 1


# ---------------------------------------------------------------- data


def load_catalog(conn, users: list[dict], items: list[dict]) -> None:
    """Users and items by COPY (not what is measured)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with conn.cursor() as cur:
        buf = io.StringIO(
            "".join(f"{u['id']}\t{{}}\t{now}\t{now}\n" for u in users)
        )
        cur.copy_expert(
            "COPY users_enduser (external_id, attributes, created_at, updated_at) "
            "FROM STDIN",
            buf,
        )
        buf = io.StringIO(
            "".join(f"{i['id']}\t\t\t{{}}\tf\t{now}\t{now}\n" for i in items)
        )
        cur.copy_expert(
            "COPY items_item (external_id, title, description, attributes, "
            "is_hidden, created_at, updated_at) FROM STDIN",
            buf,
        )
    conn.commit()


def copy_text(rows: list[tuple]) -> str:
    """COPY text of resolved rows (user, item, type, value, unix seconds)."""
    from datetime import UTC, datetime

    created = datetime.now(tz=UTC).isoformat()
    out = []
    for u, i, t, v, s in rows:
        stamp = datetime.fromtimestamp(s, tz=UTC).isoformat()
        value = "\\N" if v is None else v
        out.append(f"{u}\t{i}\t{t}\t{value}\t{stamp}\t{created}\n")
    return "".join(out)


# ---------------------------------------------------------------- experiments


def _fk_names(conn, column: str | None = None) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.conname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'f' "
            "AND (%s::text IS NULL OR a.attname = %s)",
            [TABLE, column, column],
        )
        return [r[0] for r in cur.fetchall()]


def _index_names(conn, like: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s "
            "AND indexname LIKE %s",
            [TABLE, like],
        )
        return [r[0] for r in cur.fetchall()]


def _drop_fks(conn, column=None) -> list[str]:
    return [
        f'ALTER TABLE {TABLE} DROP CONSTRAINT "{name}"'
        for name in _fk_names(conn, column)
    ]


def _drop_indexes(conn, like) -> list[str]:
    return [f'DROP INDEX "{name}"' for name in _index_names(conn, like)]


EXPERIMENTS = {
    # name: (description, conn -> [SQL])
    "no-type-fk": ("drop the FK on type_id", lambda c: _drop_fks(c, "type_id")),
    "no-fks": ("drop every FK of the table", lambda c: _drop_fks(c)),
    "no-created-index": (
        "drop the created_at index",
        lambda c: _drop_indexes(c, "interaction_created%"),
    ),
    "no-item-index": (
        "drop the item_id index",
        lambda c: _drop_indexes(c, "%item_id%"),
    ),
    "no-user-time-index": (
        "drop the (user, -timestamp) index",
        lambda c: _drop_indexes(c, "interaction_user_time%"),
    ),
    "fillfactor": (
        "fillfactor 100 on the remaining indexes",
        lambda c: [
            f'ALTER INDEX "{n}" SET (fillfactor = 100)' for n in _index_names(c, "%")
        ],
    ),
}


# ---------------------------------------------------------------- variants


def run_service(batches, probe: Probe, clock: StatementClock) -> dict:
    from django.db import connection

    from recommendations.services.interactions import interaction_record_many

    c0, b0, w0, t0 = probe.read()
    stored = 0
    with connection.execute_wrapper(clock):
        for rows in batches:
            result = interaction_record_many(rows=rows)
            if result.rejected:
                raise RuntimeError(f"rejected rows: {result.rejected[:2]}")
            stored += result.accepted
    c1, b1, w1, t1 = probe.read()
    return {
        "rows": stored,
        "client_ns": c1 - c0,
        "backend_ns": b1 - b0,
        "wal": w1 - w0,
        "wall_s": t1 - t0,
    }


def run_api(bodies, probe: Probe, token: str) -> dict:
    from rest_framework.test import APIClient

    client = APIClient(SERVER_NAME="127.0.0.1", HTTP_HOST="127.0.0.1")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    c0, b0, w0, t0 = probe.read()
    stored = 0
    for body in bodies:
        response = client.post(
            "/api/v1/interactions/",
            data=body,
            content_type="application/json",
            **headers,
        )
        if response.status_code != 201:
            raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")
        stored += json.loads(response.content)["accepted"]
    c1, b1, w1, t1 = probe.read()
    return {
        "rows": stored,
        "client_ns": c1 - c0,
        "backend_ns": b1 - b0,
        "wal": w1 - w0,
        "wall_s": t1 - t0,
    }


def run_copy(texts: list[str], probe: Probe, conn) -> dict:
    """COPY each 1,000-row chunk in its own transaction (as a batch would be)."""
    c0, b0, w0, t0 = probe.read()
    with conn.cursor() as cur:
        for text in texts:
            cur.copy_expert(
                f"COPY {COPY_TABLE} "
                "(user_id, item_id, type_id, value, timestamp, created_at) FROM STDIN",
                io.StringIO(text),
            )
            conn.commit()
    c1, b1, w1, t1 = probe.read()
    return {
        "rows": 1000 * len(texts),
        "client_ns": c1 - c0,
        "backend_ns": b1 - b0,
        "wal": w1 - w0,
        "wall_s": t1 - t0,
    }


def make_copy_table(conn) -> None:
    """A copy of the table (same indexes, same FKs as the real one has now)."""
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        cur.execute(f"CREATE TABLE {COPY_TABLE} (LIKE {TABLE} INCLUDING ALL)")
        cur.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        for (definition,) in cur.fetchall():
            cur.execute(f"ALTER TABLE {COPY_TABLE} ADD {definition}")
        cur.execute(f"INSERT INTO {COPY_TABLE} SELECT * FROM {TABLE}")
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{COPY_TABLE}', 'id'), "
            f"(SELECT max(id) FROM {COPY_TABLE}))"
        )
    conn.commit()


def per_1000(result: dict) -> dict:
    k = result["rows"] / 1000
    return {
        "web_ms": result["client_ns"] / 1e6 / k,
        "pg_ms": result["backend_ns"] / 1e6 / k,
        "wal_kb": result["wal"] / 1024 / k,
        "wall_ms": result["wall_s"] * 1e3 / k,
    }


def summarise(label: str, results: list[dict]) -> dict:
    figures = [per_1000(r) for r in results]
    out = {
        key: statistics.median(f[key] for f in figures) for key in figures[0]
    }
    out["wal_kb_min"] = min(f["wal_kb"] for f in figures)
    print(
        f"  {label:<34} web {out['web_ms']:6.1f} ms  pg {out['pg_ms']:6.1f} ms  "
        f"WAL {out['wal_kb']:6.0f} kB (min {out['wal_kb_min']:.0f})  "
        f"wall {out['wall_ms']:6.1f} ms   per 1,000 rows",
        flush=True,
    )
    return out


def print_statements(clock: StatementClock, rows: int) -> None:
    k = rows / 1000
    for key in sorted(clock.backend, key=lambda k_: -clock.backend[k_]):
        print(
            f"      {key:<44} pg {clock.backend[key] / 1e6 / k:6.2f} ms  "
            f"web {clock.client[key] / 1e6 / k:5.2f} ms  "
            f"({clock.calls[key] / k:.1f} calls)"
        )


def explain_insert(batch: list[dict]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS, WAL) of one batch's INSERT, FK checks immediate."""
    from django.db import connection, transaction

    from recommendations.services import interactions as svc

    captured = {}

    def capture(execute, sql, params, many, context):
        if sql.startswith(f"INSERT INTO {TABLE}"):
            captured["sql"], captured["params"] = sql, params
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        svc.interaction_record_many(rows=batch)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute(
            "EXPLAIN (ANALYZE, BUFFERS, WAL) " + captured["sql"],
            captured["params"],
        )
        print("\n".join(r[0] for r in cur.fetchall()))
        transaction.set_rollback(True)


def run_http(env, bodies, clients: int, db_name: str, work_dir: Path) -> None:
    from benchmarks.perf import load
    from benchmarks.perf.server import Gunicorn

    admin = db.connect(db.bench_url(db_name))
    admin.autocommit = True

    def backends() -> dict[int, int]:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid()",
                [db_name],
            )
            pids = [r[0] for r in cur.fetchall()]
        out = {}
        for pid in pids:
            try:
                out[pid] = cpu_ns(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass
        return out

    def count() -> int:
        return db.scalar(db.bench_url(db_name), f"SELECT count(*) FROM {TABLE}")

    with Gunicorn(env=env, workers=2, log_path=work_dir / "gunicorn.log") as server:
        token = env["_TOKEN"]
        load.post_bodies(
            base_url=server.base_url,
            path="/api/v1/interactions/",
            bodies=bodies[: 2 * clients],
            token=token,
            clients=clients,
        )
        before_rows = count()
        workers = server.worker_pids()
        w0 = {pid: cpu_ns(pid) for pid in workers}
        b0 = backends()
        result = load.post_bodies(
            base_url=server.base_url,
            path="/api/v1/interactions/",
            bodies=bodies,
            token=token,
            clients=clients,
        )
        w1 = {pid: cpu_ns(pid) for pid in workers}
        b1 = backends()
    stored = count() - before_rows
    k = stored / 1000 if stored else 1
    web = sum(w1[p] - w0[p] for p in workers) / 1e6 / k
    pg = sum(ns - b0.get(pid, 0) for pid, ns in b1.items()) / 1e6 / k
    eps = stored / result.duration_s
    print(
        f"  http ({result.tool}, {clients} clients, 2 workers): {stored:,} rows in "
        f"{result.duration_s:.2f}s = {eps:,.0f} events/s; p50 {result.p50_ms:.0f} ms "
        f"p99 {result.p99_ms:.0f} ms; {result.bad} non-2xx\n"
        f"      CPU per 1,000 rows: gunicorn workers {web:.1f} ms, their "
        f"PostgreSQL backends {pg:.1f} ms -> on 2 idle cores "
        f"≈ {2 * 1000 * 1000 / (web + pg):,.0f} events/s if CPU-bound"
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="recsite_ingest_prof")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--preload", type=int, default=200_000, help="rows COPYed before measuring"
    )
    parser.add_argument("--variants", default="service,api,copy")
    parser.add_argument("--experiment", action="append", default=[])
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    args = parser.parse_args()
    for name in args.experiment:
        if name not in EXPERIMENTS:
            parser.error(f"unknown experiment {name!r}: {sorted(EXPERIMENTS)}")

    work_dir = Path(f"/tmp/{args.db}")
    work_dir.mkdir(exist_ok=True)
    env = env_for(args.db, work_dir)
    if not (args.reuse and db.database_exists(args.db)):
        print(f"creating and migrating database {args.db}", flush=True)
        db.create_database(args.db)
        db.migrate(env, work_dir / "migrate.log")
        fresh = True
    else:
        fresh = False
    os.environ.update(env)
    import django

    django.setup()
    import numpy as np
    from django.db import connection

    from benchmarks.perf.data import interaction_bodies, interaction_records
    from recommendations.engine import synthetic
    from recommendations.models import InteractionType
    from users.services import api_key_create

    try:
        n_rows = args.batches * 1000
        t0 = time.perf_counter()
        log = synthetic.generate(
            n_users=args.users,
            n_items=args.items,
            n_interactions=args.preload + n_rows,
            seed=0,
        )
        print(f"synthetic data in {time.perf_counter() - t0:.1f}s", flush=True)
        conn = db.connect(db.bench_url(args.db))
        if fresh:
            load_catalog(conn, log.users, log.items)
        with conn.cursor() as cur:
            cur.execute("SELECT external_id, id FROM users_enduser")
            user_map = dict(cur.fetchall())
            cur.execute("SELECT external_id, id FROM items_item")
            item_map = dict(cur.fetchall())
        user_pks = np.array([user_map[u["id"]] for u in log.users], dtype=np.int64)
        item_pks = np.array([item_map[i["id"]] for i in log.items], dtype=np.int64)
        types = dict(InteractionType.objects.values_list("name", "id"))
        type_pks = np.array([types[n] for n in log.type_names], dtype=np.int64)
        if fresh and args.preload:
            from recommendations.services.interactions import interaction_copy_many

            p = slice(0, args.preload)
            interaction_copy_many(
                user_pks=user_pks[log.user_index[p]],
                item_pks=item_pks[log.item_index[p]],
                type_pks=type_pks[log.type_index[p].astype(np.int64)],
                timestamps=log.timestamp[p],
                values=log.value[p],
            )
        db.analyze(db.bench_url(args.db))

        start = args.preload
        batches = [
            interaction_records(log, s, s + 1000)
            for s in range(start, start + n_rows, 1000)
        ]
        # bodies for the api/http variants: the same rows as JSON
        bodies = interaction_bodies(log, 1000)[start // 1000 : (start + n_rows) // 1000]
        sel = slice(start, start + n_rows)
        resolved = list(
            zip(
                user_pks[log.user_index[sel]].tolist(),
                item_pks[log.item_index[sel]].tolist(),
                type_pks[log.type_index[sel].astype(np.int64)].tolist(),
                [None if v != v else v for v in log.value[sel].tolist()],
                log.timestamp[sel].tolist(),
                strict=True,
            )
        )
        texts = [copy_text(resolved[s : s + 1000]) for s in range(0, n_rows, 1000)]

        connection.ensure_connection()
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            django_pid = cur.fetchone()[0]
        lsn_conn = db.connect(db.bench_url(args.db))
        lsn_conn.autocommit = True
        copy_conn = db.connect(db.bench_url(args.db))
        with copy_conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            copy_pid = cur.fetchone()[0]
        copy_conn.commit()
        _, token = api_key_create(name="ingest-profile", kind="write")
        env["_TOKEN"] = token

        # json.loads of the bodies: what DRF's parser costs per 1,000 rows
        c0 = own_cpu_ns()
        for body in bodies:
            json.loads(body)
        parse_ms = (own_cpu_ns() - c0) / 1e6 / args.batches
        print(f"json.loads: {parse_ms:.1f} ms per 1,000 rows")
        # warm-up: caches, plans, connections
        from recommendations.services.interactions import interaction_record_many

        for rows in batches[:3]:
            interaction_record_many(rows=rows)

        if args.explain:
            explain_insert(batches[0])

        variants = [v for v in args.variants.split(",") if v]
        stages = [("as migrated", [])] + [
            (name, EXPERIMENTS[name]) for name in args.experiment
        ]
        for stage, experiment in stages:
            if experiment:
                description, make_sql = experiment
                statements = make_sql(conn)
                with conn.cursor() as cur:
                    for statement in statements:
                        cur.execute(statement)
                conn.commit()
                print(f"\n== experiment {stage}: {description}: {statements}")
            else:
                print(f"\n== schema {stage}")
            if "copy" in variants:
                make_copy_table(copy_conn)
            results: dict[str, list[dict]] = defaultdict(list)
            clock = StatementClock(django_pid)
            for _ in range(args.rounds):
                for variant in variants:
                    if variant == "service":
                        results[variant].append(
                            run_service(batches, Probe(django_pid, lsn_conn), clock)
                        )
                    elif variant == "api":
                        results[variant].append(
                            run_api(bodies, Probe(django_pid, lsn_conn), token)
                        )
                    elif variant == "copy":
                        results[variant].append(
                            run_copy(texts, Probe(copy_pid, lsn_conn), copy_conn)
                        )
            for variant in variants:
                summarise(variant, results[variant])
                if variant == "service":
                    total_rows = sum(r["rows"] for r in results[variant])
                    print_statements(clock, total_rows)
                    backend = sum(r["backend_ns"] for r in results[variant])
                    in_statements = sum(clock.backend.values())
                    commit_ms = (backend - in_statements) / 1e6 / (total_rows / 1000)
                    label = "COMMIT (deferred FK checks) + BEGIN"
                    print(f"      {label:<44} pg {commit_ms:6.2f} ms")
            if args.http:
                run_http(env, bodies, args.clients, args.db, work_dir)
        conn.close()
        copy_conn.close()
        lsn_conn.close()
    finally:
        connection.close()
        if not args.keep:
            db.drop_database(args.db)


if __name__ == "__main__":
    main()
