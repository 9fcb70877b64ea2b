#!/usr/bin/env python
"""Load without loss: concurrent clients, retried batches, each event stored once.

Eight clients send 200,000 distinct interactions in batches through
`POST /api/v1/interactions/` to a real gunicorn on 127.0.0.1 backed by a database of
its own (created, migrated and dropped here). About 5 % of the events are sent again
with the same `event_id`: half as whole-batch retries fired while the first attempt is
still in flight (a client whose request timed out), half as single events repeated in
a later batch. At the end the database must hold exactly the distinct events, none
twice; no answer may be a 5xx; the answers' `accepted` must add up to the distinct
events and their `duplicates` to the extra sends.

    .venv/bin/python benchmarks/load_without_loss.py            # the full run
    .venv/bin/python benchmarks/load_without_loss.py --events 20000 --clients 4

Loopback only, bounded in count (`--events`) and time (`--max-seconds`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INTERACTIONS_URL = "/api/v1/interactions/"
ITEMS_URL = "/api/v1/items/bulk/"
TYPES = ("view", "click", "like", "purchase")
# A request is retried on a transport error or a 503 (never on other statuses), as a
# well-behaved client would; such retries are counted and reported.
TRANSPORT_RETRIES = 3


@dataclass
class LoadResult:
    clients: int
    distinct_events: int
    rows_sent: int = 0
    requests: int = 0
    whole_batch_retries: int = 0
    single_event_retries: int = 0
    transport_retries: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if int(status) >= 500)

    @property
    def events_per_second(self) -> float:
        return self.distinct_events / self.seconds if self.seconds else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_sent / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["statuses"] = dict(self.statuses)
        data["server_errors"] = self.server_errors
        data["events_per_second"] = round(self.events_per_second, 1)
        data["rows_per_second"] = round(self.rows_per_second, 1)
        data["errors"] = self.errors[:20]
        return data


def item_ids(n_items: int, prefix: str) -> list[str]:
    return [f"{prefix}-item-{i}" for i in range(n_items)]


def create_items(base_url: str, key: str, *, n_items: int, prefix: str) -> None:
    """The catalog the events refer to (interactions need existing items)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    ids = item_ids(n_items, prefix)
    for start in range(0, len(ids), 2000):
        rows = [{"id": i, "title": i} for i in ids[start : start + 2000]]
        response = session.post(f"{base_url}{ITEMS_URL}", json=rows, timeout=120)
        response.raise_for_status()


def plan_batches(
    client: int,
    *,
    events: int,
    batch: int,
    retry_fraction: float,
    seed: int,
    n_users: int,
    n_items: int,
    prefix: str,
) -> list[tuple[list[dict], bool]]:
    """This client's batches, in order: (rows, send twice concurrently?)."""
    rng = random.Random(seed * 1000 + client)
    items = item_ids(n_items, prefix)
    own = [
        {
            "event_id": f"{prefix}-{client}-{n}",
            # Users overlap between clients: concurrent batches create the same
            # unknown users at the same time.
            "user": f"{prefix}-user-{rng.randrange(n_users)}",
            "item": items[rng.randrange(n_items)],
            "type": TYPES[rng.randrange(len(TYPES))],
            "timestamp": 1_700_000_000 + client * 1_000_000 + n,
        }
        for n in range(events)
    ]
    batches: list[list[dict]] = []
    carry: list[dict] = []
    for start in range(0, len(own), batch):
        batches.append(carry + own[start : start + batch])
        # Single events sent again in the next batch (a retry after a lost answer).
        carry = [
            row
            for row in own[start : start + batch]
            if rng.random() < retry_fraction / 2
        ]
    if carry:
        batches.append(carry)
    # Whole batches sent twice at once, about retry_fraction / 2 of the events, at
    # least one per client (a client whose request timed out while being served).
    n_twice = max(1, round(len(own) * retry_fraction / 2 / batch))
    twice = set(rng.sample(range(len(batches)), min(n_twice, len(batches))))
    return [(rows, index in twice) for index, rows in enumerate(batches)]


def _send(session, url, rows, result: LoadResult, lock: threading.Lock) -> None:
    for attempt in range(TRANSPORT_RETRIES + 1):
        try:
            response = session.post(url, json=rows, timeout=120)
        except requests.RequestException as exc:
            with lock:
                result.errors.append(f"transport: {exc}")
                result.transport_retries += 1
            time.sleep(0.2 * (attempt + 1))
            continue
        with lock:
            result.requests += 1
            result.rows_sent += len(rows)
            result.statuses[str(response.status_code)] += 1
        if response.status_code == 503 and attempt < TRANSPORT_RETRIES:
            with lock:
                result.transport_retries += 1
            time.sleep(0.2 * (attempt + 1))
            continue
        if response.status_code not in (200, 201):
            with lock:
                result.errors.append(f"{response.status_code}: {response.text[:300]}")
            return
        body = response.json()
        with lock:
            result.accepted += body["accepted"]
            result.duplicates += body["duplicates"]
            result.rejected += len(body["rejected"])
            for rejected in body["rejected"][:3]:
                result.errors.append(f"rejected: {rejected}")
        return


def run_load(
    base_url: str,
    key: str,
    *,
    events: int,
    clients: int = 8,
    batch: int = 500,
    retry_fraction: float = 0.05,
    seed: int = 1,
    n_users: int = 20_000,
    n_items: int = 5_000,
    prefix: str = "lw",
    max_seconds: float = 900.0,
) -> LoadResult:
    """Send `events` distinct events from `clients` threads; items must exist."""
    per_client = [
        events // clients + (1 if c < events % clients else 0) for c in range(clients)
    ]
    plans = [
        plan_batches(
            c,
            events=per_client[c],
            batch=batch,
            retry_fraction=retry_fraction,
            seed=seed,
            n_users=n_users,
            n_items=n_items,
            prefix=prefix,
        )
        for c in range(clients)
    ]
    result = LoadResult(clients=clients, distinct_events=events)
    planned_rows = sum(len(rows) for plan in plans for rows, _ in plan)
    result.single_event_retries = planned_rows - events
    result.whole_batch_retries = sum(
        len(rows) for plan in plans for rows, twice in plan if twice
    )
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    url = f"{base_url}{INTERACTIONS_URL}"

    def client(plan) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        twin = requests.Session()
        twin.headers["Authorization"] = f"Bearer {key}"
        for rows, twice in plan:
            if time.monotonic() > deadline:
                with lock:
                    result.errors.append("deadline reached: run stopped early")
                return
            if twice:
                # The retry leaves while the first attempt is still being served.
                retry = threading.Thread(
                    target=_send, args=(twin, url, rows, result, lock)
                )
                retry.start()
                _send(session, url, rows, result, lock)
                retry.join()
            else:
                _send(session, url, rows, result, lock)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, plans))
    result.seconds = time.monotonic() - started
    return result


def expected_event_ids(*, events: int, clients: int, prefix: str) -> set[str]:
    per_client = [
        events // clients + (1 if c < events % clients else 0) for c in range(clients)
    ]
    return {f"{prefix}-{c}-{n}" for c in range(clients) for n in range(per_client[c])}


def verify(
    stored_event_ids: list[str], result: LoadResult, *, prefix: str
) -> list[str]:
    """Every way the run lost, doubled or invented data, as messages (empty = none)."""
    problems = []
    expected = expected_event_ids(
        events=result.distinct_events, clients=result.clients, prefix=prefix
    )
    counts = Counter(stored_event_ids)
    doubled = [event for event, n in counts.items() if n > 1]
    missing = expected - counts.keys()
    unexpected = counts.keys() - expected
    if doubled:
        problems.append(f"{len(doubled)} events stored twice, e.g. {doubled[:3]}")
    if missing:
        problems.append(f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected events, e.g. {sorted(unexpected)[:3]}"
        )
    if result.server_errors:
        problems.append(f"{result.server_errors} answers were 5xx")
    if result.accepted != len(expected):
        problems.append(f"answers accepted {result.accepted}, expected {len(expected)}")
    if result.accepted + result.duplicates != result.rows_sent:
        problems.append(
            f"accepted {result.accepted} + duplicates {result.duplicates} "
            f"!= rows sent {result.rows_sent}"
        )
    if result.rejected:
        problems.append(f"{result.rejected} rows rejected")
    other = {s: n for s, n in result.statuses.items() if s not in ("200", "201")}
    if other:
        problems.append(f"unexpected statuses {other}")
    return problems


def main(argv: list[str] | None = None) -> int:
    from benchmarks.perf import db
    from benchmarks.perf.server import Gunicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--retry-fraction", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", default=f"recsite_load_{os.getpid()}")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    work = ROOT / ".local" / "load_without_loss"
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "server.log"
    url = db.bench_url(args.db)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "recsite.settings.base",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "load-without-loss-" + "x" * 40,
        "DEBUG": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "LOG_LEVEL": "WARNING",
        # This run measures ingestion, not throttling.
        "THROTTLE_WRITE": "1000000/min",
        "CACHE_KEY_PREFIX": f"load-{os.getpid()}",
    }
    print(f"database {args.db}: create + migrate", flush=True)
    db.create_database(args.db)
    try:
        db.migrate(env, log_path)
        key = _create_key(env)
        with Gunicorn(env=env, workers=args.workers, log_path=log_path) as server:
            print(f"gunicorn {server.base_url} ({args.workers} workers)", flush=True)
            create_items(server.base_url, key, n_items=args.items, prefix="lw")
            result = run_load(
                server.base_url,
                key,
                events=args.events,
                clients=args.clients,
                batch=args.batch,
                retry_fraction=args.retry_fraction,
                seed=args.seed,
                n_users=args.users,
                n_items=args.items,
                prefix="lw",
                max_seconds=args.max_seconds,
            )
        conn = db.connect(url)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT event_id FROM recommendations_interaction"
                    " WHERE event_id LIKE 'lw-%%'"
                )
                stored = [row[0] for row in cursor.fetchall()]
                cursor.execute("SELECT count(*) FROM recommendations_interaction")
                total_rows = cursor.fetchone()[0]
        finally:
            conn.close()
    finally:
        if not args.keep_db:
            db.drop_database(args.db)

    problems = verify(stored, result, prefix="lw")
    figures = result.as_dict() | {
        "stored_rows": total_rows,
        "stored_distinct_event_ids": len(set(stored)),
        "batch": args.batch,
        "gunicorn_workers": args.workers,
        "problems": problems,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"\n{result.distinct_events} distinct events ({result.rows_sent} rows in "
        f"{result.requests} requests, {result.whole_batch_retries} rows in concurrent "
        f"whole-batch retries, {result.single_event_retries} single-event retries) in "
        f"{result.seconds:.1f} s: {result.events_per_second:.0f} distinct events/s, "
        f"{result.rows_per_second:.0f} rows/s; stored {len(stored)} rows, "
        f"{len(set(stored))} distinct; 5xx: {result.server_errors}",
        flush=True,
    )
    print(
        "OK: no loss, no duplicate"
        if not problems
        else "FAILED: " + "; ".join(problems)
    )
    return 0 if not problems else 1


def _create_key(env: dict[str, str]) -> str:
    import subprocess

    out = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "load-without-loss"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(main())
