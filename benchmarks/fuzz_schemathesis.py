#!/usr/bin/env python
"""The long schemathesis run: every operation, many examples, three kinds of key.

The suite runs a bounded version (tests/reliability/test_fuzz_schemathesis.py). This
one creates a database of its own (dropped at the end), a private redis-server for
the cache and the Celery broker, seeds a small catalog, and fuzzes the OpenAPI
document in-process (WSGI) with a write, a read-only and a public key, in positive
and negative mode. Failing checks: no 5xx, documented responses match their schema
and media type. Reported only (not failing): undocumented status codes and invalid
input that was accepted (schemathesis' `status_code_conformance` and
`negative_data_rejection`).

    .venv/bin/python benchmarks/fuzz_schemathesis.py --examples 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=200, help="per operation and mode"
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--db", default=f"recsite_fuzz_{os.getpid()}")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from benchmarks.perf import db
    from tests.reliability.servers import PrivateRedis

    url = db.bench_url(args.db)
    work = Path(tempfile.mkdtemp(prefix="recsite-fuzz-"))
    redis_server = PrivateRedis(work / "redis")
    redis_server.start()
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "fuzz-" + "k" * 50,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
        "MEDIA_ROOT": str(work / "media"),
        "ARTIFACTS_DIR": str(work / "artifacts"),
        "LOG_LEVEL": "ERROR",
        "THROTTLE_WRITE": "1000000/min",
        "THROTTLE_READ_ONLY": "1000000/min",
        "THROTTLE_PUBLIC": "1000000/min",
    }
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "recsite.settings.base"
    print(f"database {args.db}: create + migrate", flush=True)
    db.create_database(args.db)
    try:
        db.migrate({**os.environ}, work / "migrate.log")
        return _fuzz(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            db.drop_database(args.db)
        redis_server.stop()


def _fuzz(args) -> int:
    import django

    django.setup()
    from django.test.utils import setup_test_environment
    from schemathesis.generation import GenerationMode

    from tests.factories import EndUserFactory, InteractionFactory, ItemFactory
    from tests.reliability.fuzzing import FuzzReport, run_fuzz
    from users.models import ApiKey
    from users.services import api_key_create

    setup_test_environment()  # the test Client that fetches the schema
    users = EndUserFactory.create_batch(5)
    items = ItemFactory.create_batch(10, categories=["books"], tags=["new"])
    for user in users:
        for item in items[:4]:
            InteractionFactory(user=user, item=item)

    figures = {}
    failed = False
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for kind in (ApiKey.Kind.WRITE, ApiKey.Kind.READ_ONLY, ApiKey.Kind.PUBLIC):
        _, raw_key = api_key_create(name=f"fuzz-{kind}", kind=kind)
        headers = {"Authorization": f"Bearer {raw_key}"}
        started = time.monotonic()
        report = run_fuzz(
            headers=headers, max_examples=args.examples, seed=args.seed, modes=modes
        )
        advisory = run_fuzz(
            headers=headers,
            max_examples=max(10, args.examples // 10),
            seed=args.seed + 1,
            modes=modes,
            checks=("status_code_conformance", "negative_data_rejection"),
            report=FuzzReport(),
        )
        print(f"\n== {kind} key: {report.summary()}", flush=True)
        print(f"-- advisory checks ({kind}): {advisory.summary()}", flush=True)
        figures[kind] = {
            "operations": len(report.operations),
            "requests": report.total_examples,
            "statuses": dict(report.statuses),
            "failures": [str(f) for f in report.failures],
            "advisory_requests": advisory.total_examples,
            "advisory_findings": [str(f) for f in advisory.failures],
            "seconds": round(time.monotonic() - started, 1),
        }
        failed = failed or bool(report.failures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    total = sum(f["requests"] for f in figures.values())
    print(
        f"\n{total} requests over {figures['write']['operations']} operations "
        "and 3 keys; "
        + ("FAILED" if failed else "no 5xx, every documented response conforms")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
