"""Recommendation quality measured through the REST API, against the engine offline.

Protocol (the same as benchmarks/quality.py): distinct (user, item) pairs of a
MovieLens-format directory are split per user at random 75/25 (seeded). The 75% is
imported into a fresh database (`recsite_quality` by default, created and dropped by
this script) with `manage.py import_movielens`'s loader, a model is trained with the
DEFAULT configuration (`manage.py train --wait` path), then for every test user:

- offline: `Recommender.recommend` on the published artifacts with the user's whole
  training history, excluding it (what the engine's own benchmark does);
- through the API: `GET /api/v1/users/{id}/recommendations/?n=10` over HTTP to a real
  gunicorn (2 workers, one BLAS thread each), or the Django test client
  (`--client django`);

and P@10 / R@10 / NDCG@10 / coverage are computed against the held-out 25%. It then
checks that a hidden item never appears, and that a new item posted with metadata
(`POST /api/v1/items/`, a copy of an existing item's metadata) shows up in that item's
`/similar/` list without retraining. Results replace this data set's part of the
"Through the REST API" section of docs/quality.md.

    .venv/bin/python benchmarks/quality_api.py path/to/ml-100k
    # no MovieLens here: write a MovieLens-format directory from engine.synthetic first
    .venv/bin/python benchmarks/quality_api.py /tmp/ml-synth --make-synthetic \
        --users 943 --items 1682 --interactions 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "quality.md"
SECTION = "## Through the REST API"
SECTION_START = "<!-- rest-api: start -->"
SECTION_END = "<!-- rest-api: end -->"
DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:5432/recsite"

# ml-100k genre order (u.item flags); synthetic categories are mapped onto it.
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# Ratings for synthetic interaction types without a value (dislikes are dropped).
TYPE_RATING = {"view": 3, "click": 3, "like": 5, "add_to_cart": 4, "purchase": 5}


# ------------------------------------------------------------------ synthetic -> ML


def write_movielens_100k(log, directory: Path) -> None:
    """Write an engine InteractionLog as an ml-100k directory (u.data, u.item, u.user).

    One rating per (user, item) (its first interaction); `rating` rows keep their
    value, other types map through TYPE_RATING; dislikes are dropped (the engine's
    benchmark drops them too). Categories map onto the 19 ml-100k genres.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names = list(log.type_names)
    keep = np.ones(log.n_rows, dtype=bool)
    if "dislike" in names:
        keep &= log.type_index != names.index("dislike")
    rows = np.flatnonzero(keep)
    pair = log.user_index[rows].astype(np.int64) * len(log.items) + log.item_index[rows]
    order = np.lexsort((log.timestamp[rows], pair))
    first = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    rows = rows[first]
    lines = []
    for r in rows.tolist():
        name = names[int(log.type_index[r])]
        value = float(log.value[r])
        rating = int(round(value)) if value == value else TYPE_RATING.get(name, 3)
        lines.append(
            f"{int(log.user_index[r]) + 1}\t{int(log.item_index[r]) + 1}\t"
            f"{min(max(rating, 1), 5)}\t{int(log.timestamp[r])}"
        )
    (directory / "u.data").write_text("\n".join(lines) + "\n", encoding="latin-1")
    categories = sorted({c for it in log.items for c in it["categories"]})
    genre_of = {c: 1 + i % (len(GENRES) - 1) for i, c in enumerate(categories)}
    item_lines = []
    for i, it in enumerate(log.items):
        flags = ["0"] * len(GENRES)
        for c in it["categories"]:
            flags[genre_of[c]] = "1"
        year = it["attributes"].get("year", 1995)
        title = it["title"].replace("|", " ")
        item_lines.append(
            f"{i + 1}|{title} ({year})|01-Jan-{year}||http://x|" + "|".join(flags)
        )
    (directory / "u.item").write_text("\n".join(item_lines) + "\n", encoding="latin-1")
    user_lines = []
    for u, user in enumerate(log.users):
        a = user["attributes"]
        gender = {"f": "F", "m": "M"}.get(a.get("gender"), "M")
        user_lines.append(
            f"{u + 1}|{a.get('age', 30)}|{gender}|other|{a.get('country', 'x')}"
        )
    (directory / "u.user").write_text("\n".join(user_lines) + "\n", encoding="latin-1")


# ------------------------------------------------------------------ database


def _db_settings(name: str) -> tuple[str, dict]:
    import dj_database_url

    base = os.environ.get("DATABASE_URL") or DEFAULT_DB_URL
    parsed = dj_database_url.parse(base)
    url = urllib.parse.urlsplit(base)
    quality_url = urllib.parse.urlunsplit(url._replace(path=f"/{name}"))
    return quality_url, parsed


def _admin_connection(parsed: dict):
    import psycopg2

    conn = psycopg2.connect(
        dbname="postgres",
        user=parsed.get("USER") or None,
        password=parsed.get("PASSWORD") or None,
        host=parsed.get("HOST") or None,
        port=parsed.get("PORT") or None,
    )
    conn.autocommit = True
    return conn


def recreate_database(parsed: dict, name: str) -> None:
    """Drop and create the benchmark database."""
    conn = _admin_connection(parsed)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def drop_database(parsed: dict, name: str) -> None:
    """Drop the benchmark database."""
    from django.db import connections

    connections.close_all()
    conn = _admin_connection(parsed)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


# ------------------------------------------------------------------ HTTP clients


class GunicornClient:
    """A real gunicorn serving the benchmark database; GET/POST/PATCH with a key."""

    def __init__(self, env: dict, key: str, workers: int = 2) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.key = key
        self.log = tempfile.NamedTemporaryFile(
            prefix="gunicorn-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "recsite.wsgi:application",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                str(workers),
                "--timeout",
                "300",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.request("GET", "/api/v1/health/")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not start; see {self.log.name}")

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class DjangoClient:
    """The Django test client (in-process, the full DRF stack, no sockets)."""

    def __init__(self, key: str) -> None:
        from rest_framework.test import APIClient

        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        call = getattr(self.client, method.lower())
        response = call(path, body, format="json") if body is not None else call(path)
        return response.status_code, response.json()

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ metrics


def top_list_metrics(lists: dict[int, list[int]], test, k: int = 10) -> dict:
    """P/R/NDCG@k and coverage of per-user ranked item-index lists (engine formulas)."""
    from recommendations.engine.evaluate import evaluate_top_lists

    users = np.array(sorted(lists), dtype=np.int64)
    return evaluate_top_lists(
        lambda u: np.array(lists[u], dtype=np.int64), test, k=k, users=users
    )


def _fmt(m: dict) -> str:
    return (
        f"P@10 {m['precision_at_10']:.4f}  R@10 {m['recall_at_10']:.4f}  "
        f"NDCG@10 {m['ndcg_at_10']:.4f}  coverage {m['coverage']:.3f}"
    )


# ------------------------------------------------------------------ main


def run(args) -> dict:
    directory = Path(args.directory)
    if args.make_synthetic:
        from recommendations.engine import synthetic

        log = synthetic.generate(
            n_users=args.users,
            n_items=args.items,
            n_interactions=args.interactions,
            seed=args.data_seed,
        )
        write_movielens_100k(log, directory)
        print(f"wrote a MovieLens-format directory from engine.synthetic: {directory}")

    quality_url, parsed = _db_settings(args.db_name)
    artifacts = Path(tempfile.mkdtemp(prefix="recsite-quality-artifacts-"))
    os.environ["DATABASE_URL"] = quality_url
    os.environ["ARTIFACTS_DIR"] = str(artifacts)
    os.environ.setdefault("SECRET_KEY", "quality-benchmark-only")
    os.environ["DJANGO_SETTINGS_MODULE"] = "recsite.settings.base"
    os.environ["SERVING_REFRESH_S"] = "1"
    os.environ["ALLOWED_HOSTS"] = "localhost,127.0.0.1,testserver"
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    recreate_database(parsed, args.db_name)
    print(f"fresh database {args.db_name}")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return _run_in_database(args, directory, artifacts)
    finally:
        if not args.keep_db:
            drop_database(parsed, args.db_name)
            print(f"dropped database {args.db_name}")
        shutil.rmtree(artifacts, ignore_errors=True)


def _run_in_database(args, directory: Path, artifacts: Path) -> dict:
    from items.models import Item
    from recommendations import serving
    from recommendations.engine.artifacts import load_artifacts
    from recommendations.engine.evaluate import holdout_pairs
    from recommendations.engine.movielens import load_movielens
    from recommendations.engine.recommender import Recommender, pin_single_blas_thread
    from recommendations.management.commands.import_movielens import (
        interaction_log_subset,
    )
    from recommendations.models import ModelVersion
    from recommendations.services.demo import demo_data_load
    from recommendations.services.registry import artifact_store
    from recommendations.services.training import model_version_train_now
    from users.models import ApiKey, EndUser
    from users.services import api_key_create

    t0 = time.perf_counter()
    log = load_movielens(directory)
    n_users, n_items = len(log.users), len(log.items)
    train, test = holdout_pairs(
        log.user_index, log.item_index, n_users, n_items, fraction=0.25, seed=args.seed
    )
    # Import every rating row whose (user, item) pair is in the 75%.
    in_train = np.asarray(train[log.user_index, log.item_index]).ravel() > 0
    demo_data_load(log=interaction_log_subset(log, rows=np.flatnonzero(in_train)))
    print(
        f"imported {len(log.users)} users, {len(log.items)} items, "
        f"{int(in_train.sum())} of {log.n_rows} ratings (75% of pairs; "
        f"{test.nnz} held out) "
        f"in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )

    params = {"time_budget_s": args.budget} if args.budget else None
    t0 = time.perf_counter()
    last = [-1]

    def progress(stage: str, percent: float) -> None:
        if int(percent) // 10 != last[0]:
            last[0] = int(percent) // 10
            print(f"  training: {percent:5.1f}% {stage}", flush=True)

    version = model_version_train_now(
        trigger=ModelVersion.Trigger.COMMAND, params=params, progress=progress
    )
    train_s = time.perf_counter() - t0
    if version.status != ModelVersion.Status.ACTIVE:
        raise SystemExit(f"training ended {version.status}: {version.error}")
    print(
        f"trained version {version.pk} in {train_s:.0f}s: "
        f"{version.params.get('chosen')}"
    )

    user_pk = dict(EndUser.objects.values_list("external_id", "id"))
    item_pk = dict(Item.objects.values_list("external_id", "id"))
    u_pks = np.array([user_pk[str(u["id"])] for u in log.users], dtype=np.int64)
    i_pks = np.array([item_pk[str(it["id"])] for it in log.items], dtype=np.int64)
    index_of_item = {int(pk): i for i, pk in enumerate(i_pks.tolist())}
    index_of_external = {str(it["id"]): i for i, it in enumerate(log.items)}
    test_users = np.flatnonzero(np.diff(test.indptr) > 0)

    # Offline: the engine's Recommender on the published artifacts.
    store = artifact_store()
    local = (
        store.artifact_local_dir(name=version.artifact_path)
        if store is not None
        else version.artifact_path
    )
    rec = Recommender(load_artifacts(local, mmap=True))
    # The timestamp and type weight of each training pair, as the database has them.
    from recommendations.models import InteractionType

    weight = {
        t.name: (t.weight if t.is_positive else -t.weight)
        for t in InteractionType.objects.all()
    }
    row_weight = np.array([weight[n] for n in log.type_names], dtype=np.float32)
    stamp = {
        (int(u), int(i)): float(t)
        for u, i, t in zip(
            log.user_index[in_train], log.item_index[in_train], log.timestamp[in_train]
        )
    }
    from recommendations.serving import _times_after_training

    trained_until = rec.bundle.blend.get("trained_until")
    offline_lists, inputs_lists = {}, {}
    with pin_single_blas_thread():
        for u in test_users.tolist():
            items = train.indices[train.indptr[u] : train.indptr[u + 1]]
            seen = i_pks[items]
            # The engine's own protocol (benchmarks/quality.py): weight 1, no times.
            res = rec.recommend(
                user_pk=int(u_pks[u]),
                history_item_pks=seen,
                k=10,
                exclude_item_pks=seen,
            )
            offline_lists[u] = [index_of_item[int(pk)] for pk in res.item_pks.tolist()]
            # The inputs serving passes: type weights, and timestamps of rows newer
            # than the model (none here: the whole history was trained on).
            res = rec.recommend(
                user_pk=int(u_pks[u]),
                history_item_pks=seen,
                history_weights=np.full(seen.size, row_weight[0], dtype=np.float32),
                history_timestamps=_times_after_training(
                    np.array([stamp[(u, int(i))] for i in items], dtype=np.float64),
                    trained_until,
                ),
                k=10,
                exclude_item_pks=seen,
            )
            inputs_lists[u] = [index_of_item[int(pk)] for pk in res.item_pks.tolist()]
    offline = top_list_metrics(offline_lists, test)
    offline_inputs = top_list_metrics(inputs_lists, test)
    print(f"offline (engine Recommender): {_fmt(offline)}", flush=True)
    print(
        f"offline with serving's inputs (weights, timestamps): {_fmt(offline_inputs)}",
        flush=True,
    )

    # Through the REST API.
    _, raw_key = api_key_create(name="quality-benchmark", kind=ApiKey.Kind.WRITE)
    if args.client == "gunicorn":
        client = GunicornClient(dict(os.environ), raw_key, workers=args.workers)
    else:
        client = DjangoClient(raw_key)
    try:
        for u in test_users[: 4 * args.workers].tolist():  # warm every worker
            client.request(
                "GET", f"/api/v1/users/{log.users[u]['id']}/recommendations/?n=10"
            )
        api_lists, latencies, strategies = {}, [], {}
        for u in test_users.tolist():
            user_id = urllib.parse.quote(str(log.users[u]["id"]))
            path = f"/api/v1/users/{user_id}/recommendations/?n=10"
            t = time.perf_counter()
            status, body = client.request("GET", path)
            latencies.append(time.perf_counter() - t)
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status} {body}")
            strategies[body["strategy"]] = strategies.get(body["strategy"], 0) + 1
            api_lists[u] = [index_of_external[i["id"]] for i in body["items"]]
        api = top_list_metrics(api_lists, test)
        lat = np.array(latencies) * 1e3
        print(f"through the API ({args.client}): {_fmt(api)}", flush=True)
        print(
            f"  HTTP latency per request: median {np.median(lat):.1f} ms, "
            f"p99 {np.percentile(lat, 99):.1f} ms; strategies {strategies}"
        )
        same = np.mean([api_lists[u] == offline_lists[u] for u in test_users.tolist()])
        same_inputs = np.mean(
            [api_lists[u] == inputs_lists[u] for u in test_users.tolist()]
        )
        print(
            f"  identical top-10 lists: API vs offline {same:.1%}, API vs offline "
            f"with serving's inputs {same_inputs:.1%}"
        )

        checks = _checks(client, log, api_lists, test_users, serving)
    finally:
        client.close()

    in_process = _in_process_latency(log, test_users, args.latency_requests)
    return {
        "offline": offline,
        "api": api,
        "latency_ms": (float(np.median(lat)), float(np.percentile(lat, 99))),
        "in_process_ms": in_process,
        "identical": float(same),
        "identical_inputs": float(same_inputs),
        "offline_inputs": offline_inputs,
        "checks": checks,
        "version": version,
        "train_s": train_s,
        "n_test_users": int(test_users.size),
    }


def _checks(client, log, api_lists, test_users, serving) -> dict:
    """A hidden item never appears; a new item shows up in its neighbour's list."""
    counts: dict[int, int] = {}
    for items in api_lists.values():
        for i in items:
            counts[i] = counts.get(i, 0) + 1
    hidden_index = max(counts, key=counts.get)
    hidden_id = str(log.items[hidden_index]["id"])
    status, _ = client.request(
        "PATCH", f"/api/v1/items/{hidden_id}/", {"is_hidden": True}
    )
    assert status == 200, status
    affected = [u for u in test_users.tolist() if hidden_index in api_lists[u]]
    leaks = 0
    for u in affected:
        _, body = client.request(
            "GET", f"/api/v1/users/{log.users[u]['id']}/recommendations/?n=10"
        )
        leaks += hidden_id in [i["id"] for i in body["items"]]
    for path in ("/api/v1/recommendations/popular/?n=100",):
        _, body = client.request("GET", path)
        leaks += hidden_id in [i["id"] for i in body["items"]]
    print(
        f"  hidden item {hidden_id}: re-requested {len(affected)} lists, {leaks} leaks"
    )

    source = log.items[0]
    new_id = "quality-new-item"
    status, _ = client.request(
        "POST",
        "/api/v1/items/",
        {
            "id": new_id,
            "title": source["title"],
            "description": source["description"],
            "categories": source["categories"],
            "tags": source["tags"],
            "attributes": source["attributes"],
        },
    )
    assert status == 201, status
    found, waited = False, 0.0
    started = time.perf_counter()
    while not found and waited < 15:
        _, body = client.request("GET", f"/api/v1/items/{source['id']}/similar/?n=10")
        found = new_id in [i["id"] for i in body["items"]]
        waited = time.perf_counter() - started
        if not found:
            time.sleep(0.5)
    print(
        f"  new item posted with metadata: in /items/{source['id']}/similar/ top-10 "
        f"after {waited:.1f}s: {found}"
    )
    return {
        "hidden_leaks": leaks,
        "hidden_rechecked": len(affected),
        "new_item_found": found,
        "new_item_after_s": waited,
    }


def _in_process_latency(log, test_users, n: int) -> dict:
    """`recommend_for_user` and the full DRF stack (test client), in this process."""
    from rest_framework.test import APIClient

    from recommendations import serving
    from users.models import ApiKey
    from users.services import api_key_create

    rng = np.random.default_rng(0)
    users = [str(log.users[u]["id"]) for u in rng.choice(test_users, size=n)]
    for uid in users[:20]:
        serving.recommend_for_user(user_external_id=uid)
    times = []
    for uid in users:
        t = time.perf_counter()
        serving.recommend_for_user(user_external_id=uid, n=10)
        times.append(time.perf_counter() - t)
    fn = np.array(times) * 1e3
    _, key = api_key_create(name="latency", kind=ApiKey.Kind.READ_ONLY)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    times = []
    for uid in users:
        t = time.perf_counter()
        assert (
            client.get(f"/api/v1/users/{uid}/recommendations/?n=10").status_code == 200
        )
        times.append(time.perf_counter() - t)
    stack = np.array(times) * 1e3
    result = {
        "function": (float(np.median(fn)), float(np.percentile(fn, 99))),
        "drf": (float(np.median(stack)), float(np.percentile(stack, 99))),
        "n": n,
    }
    print(
        f"in-process latency over {n} requests: recommend_for_user median "
        f"{result['function'][0]:.2f} ms p99 {result['function'][1]:.2f} ms; "
        f"DRF test client median {result['drf'][0]:.2f} ms "
        f"p99 {result['drf'][1]:.2f} ms"
    )
    return result


def machine() -> str:
    """nproc and CPU model."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, Python {platform.python_version()}"


def write_doc(args, key: str, r: dict) -> None:
    """Replace this data set's part of the "Through the REST API" section."""
    command = ".venv/bin/python benchmarks/quality_api.py " + " ".join(sys.argv[1:])
    o, a, c = r["offline"], r["api"], r["checks"]
    oi = r["offline_inputs"]
    fn = r["in_process_ms"]["function"]
    v = r["version"]
    budget = v.params.get("time_budget_s")
    body = "\n".join(
        [
            f"<!-- rest-api run: {key} -->",
            f"### {key}",
            "",
            f"Command: `{command}`  ",
            f"Machine: {machine()}; 1-minute load average at the end "
            f"{os.getloadavg()[0]:.1f} (shared machine: latencies are upper bounds)  ",
            f"Date: {dt.date.today().isoformat()}; split seed {args.seed}; default "
            f"configuration, time budget {budget:.0f} s; "
            f"trained in {r['train_s']:.0f} s; "
            f"{r['n_test_users']} test users; HTTP client: {args.client}",
            "",
            "| path | P@10 | R@10 | NDCG@10 | coverage |",
            "|---|---|---|---|---|",
            f"| engine offline (`Recommender.recommend`, whole history) | "
            f"{o['precision_at_10']:.4f} | {o['recall_at_10']:.4f} | "
            f"{o['ndcg_at_10']:.4f} | {o['coverage']:.3f} |",
            f"| engine offline with serving's inputs (type weights; timestamps only "
            f"for rows newer than the model) | {oi['precision_at_10']:.4f} | "
            f"{oi['recall_at_10']:.4f} | "
            f"{oi['ndcg_at_10']:.4f} | {oi['coverage']:.3f} |",
            f"| **REST API** (`GET /users/{{id}}/recommendations/?n=10`) | "
            f"**{a['precision_at_10']:.4f}** | {a['recall_at_10']:.4f} | "
            f"{a['ndcg_at_10']:.4f} | {a['coverage']:.3f} |",
            "",
            f"Identical top-10 lists: API vs engine offline {r['identical']:.1%}, "
            f"API vs engine offline with serving's inputs "
            f"{r['identical_inputs']:.1%}.  ",
            f"HTTP latency per request ({args.client}, {args.workers} workers, "
            f"sequential): median {r['latency_ms'][0]:.1f} ms, "
            f"p99 {r['latency_ms'][1]:.1f} ms.  ",
            f"In-process latency over {r['in_process_ms']['n']} requests: "
            f"`serving.recommend_for_user` median {fn[0]:.2f} ms, "
            f"p99 {fn[1]:.2f} ms; full DRF stack (test client) "
            f"median {r['in_process_ms']['drf'][0]:.2f} ms, "
            f"p99 {r['in_process_ms']['drf'][1]:.2f} ms.  ",
            "Hidden item (the most recommended one, hidden with "
            "`PATCH /items/{id}/`): "
            f"{c['hidden_rechecked']} affected lists re-requested, "
            f"**{c['hidden_leaks']} leaks**.  ",
            "New item posted with a copy of an item's metadata (`POST /items/`): "
            f"in that item's `/similar/?n=10` after {c['new_item_after_s']:.1f} s "
            "without retraining: "
            f"**{'yes' if c['new_item_found'] else 'NO'}**.",
            f"<!-- rest-api end: {key} -->",
        ]
    )
    doc = DOC.read_text() if DOC.exists() else "# Recommendation quality\n"
    if SECTION_START not in doc:
        intro = (
            f"{SECTION}\n\n"
            "Generated by `benchmarks/quality_api.py` (see its docstring): the same "
            "75/25 "
            "split of distinct pairs as above, the 75% imported into a fresh database, "
            "the default configuration trained by the training service, then every "
            "test "
            "user's list fetched through the real HTTP stack and compared with the "
            "engine's own `Recommender` on the same published artifacts. The serving "
            "path reads at most the newest 500 interactions per user for the user "
            "vector and excludes everything among the newest 2,000 (`serving.py`)."
        )
        doc = doc.rstrip("\n") + f"\n\n{SECTION_START}\n{intro}\n{SECTION_END}\n"
    start, end = doc.index(SECTION_START), doc.index(SECTION_END)
    section = doc[start:end]
    pattern = re.compile(
        rf"<!-- rest-api run: {re.escape(key)} -->.*?"
        rf"<!-- rest-api end: {re.escape(key)} -->",
        re.DOTALL,
    )
    if pattern.search(section):
        section = pattern.sub(lambda _: body, section)
    else:
        section = section.rstrip("\n") + "\n\n" + body + "\n"
    DOC.write_text(doc[:start] + section + doc[end:])
    print(f"wrote {DOC}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "directory", help="MovieLens-format directory (ml-100k/ml-latest)"
    )
    parser.add_argument(
        "--make-synthetic",
        action="store_true",
        help="First write DIRECTORY from engine.synthetic.",
    )
    parser.add_argument("--users", type=int, default=943)
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--data-seed", type=int, default=42)
    parser.add_argument("--seed", type=int, default=42, help="Split seed.")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="Training time budget (default: TRAIN_TIME_BUDGET_S).",
    )
    parser.add_argument("--db-name", default="recsite_quality")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--client", choices=("gunicorn", "django"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-requests", type=int, default=500)
    parser.add_argument(
        "--no-doc", action="store_true", help="Do not write docs/quality.md."
    )
    args = parser.parse_args()
    result = run(args)
    if args.make_synthetic:
        key = (
            f"synthetic (MovieLens format) {args.users} users x {args.items} items, "
            f"{args.interactions} rows"
        )
    else:
        key = f"MovieLens {Path(args.directory).name}"
    if not args.no_doc:
        write_doc(args, key, result)


if __name__ == "__main__":
    main()
