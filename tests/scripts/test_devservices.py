"""scripts/devservices.py: the embedded PostgreSQL and Redis behind start.sh/test.sh."""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import dj_database_url
import psycopg2
import pytest
import redis

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "devservices.py"


@pytest.fixture
def devservices(monkeypatch):
    # Not pytest's tmp_path: a concurrent pytest run resets /tmp/pytest-of-<user> to
    # 0700, which locks the server's system user (when run as root) out mid-test.
    tmp_path = Path(tempfile.mkdtemp(prefix="recsite-devservices-"))
    spec = importlib.util.spec_from_file_location("devservices_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    local = tmp_path / "local"
    monkeypatch.setattr(module, "LOCAL", local)
    monkeypatch.setattr(module, "PG_DATA", local / "postgres")
    monkeypatch.setattr(module, "REDIS_DIR", local / "redis")
    monkeypatch.setattr(module, "HOLDERS_FILE", local / "holders.json")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    yield module
    module.redis_stop()
    module.pg_stop()
    shutil.rmtree(tmp_path, ignore_errors=True)


def run(module, *argv, capsys):
    module.main(list(argv))
    return capsys.readouterr().out


def parse_exports(text):
    values = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value.strip("'")
    return values


def test_start_gives_urls_django_and_redis_use_and_the_last_holder_stops_them(
    devservices, capsys
):
    me, other = str(os.getpid()), str(os.getppid())
    exports = parse_exports(run(devservices, "start", "--holder", me, capsys=capsys))

    database = dj_database_url.parse(exports["DATABASE_URL"])
    assert database["HOST"] == str(devservices.PG_DATA)
    connection = psycopg2.connect(
        host=database["HOST"], user=database["USER"], dbname=database["NAME"]
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")
        assert cursor.fetchone() == (True,)  # pytest-django creates test_<name>
    connection.close()
    assert redis.Redis.from_url(exports["REDIS_URL"]).ping()
    assert exports["CELERY_BROKER_URL"].startswith("redis+socket:///")

    # A second user (say test.sh next to start.sh) reuses both servers...
    run(devservices, "start", "--holder", other, capsys=capsys)
    assert devservices.pg_start() is False
    assert devservices.redis_start() is False
    # ...and they keep running until the last live holder releases them.
    run(devservices, "release", "--holder", me, capsys=capsys)
    assert devservices.pg_running() is not None
    assert devservices.redis_ping()
    run(devservices, "release", "--holder", other, capsys=capsys)
    assert devservices.pg_running() is None
    assert devservices.redis_pid() is None


def test_nothing_is_embedded_when_the_urls_are_set(devservices, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/recsite")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")

    assert run(devservices, "start", capsys=capsys).strip() == ""
    assert not devservices.PG_DATA.exists()
    assert devservices.redis_pid() is None


def test_redis_db_selects_the_database_for_cache_and_broker(devservices, capsys):
    exports = parse_exports(run(devservices, "env", "--redis-db", "1", capsys=capsys))

    assert exports["REDIS_URL"].endswith("?db=1")
    assert exports["CELERY_BROKER_URL"].endswith("?virtual_host=1")
