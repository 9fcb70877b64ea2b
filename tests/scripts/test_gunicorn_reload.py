"""gunicorn.conf.py + recsite/prefork.py: a version activated while gunicorn runs.

A real gunicorn (2 sync workers, the application and the model preloaded in the
master) serves the pytest database. A second version is activated through the
registry service while a client keeps requesting recommendations:

- with the model watcher (the default), the master loads the new version and
  re-forks its workers: every worker is replaced, every answer then names the new
  version, the version is loaded once (by the master, not by each worker), and no
  request fails during the switch;
- with GUNICORN_RELOAD_ON_ACTIVATION=0 the workers stay and each loads it itself.
"""

from __future__ import annotations

import threading
import time

import psutil
import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection

from recommendations.engine import synthetic
from tests.reliability.servers import LOOPBACK, Gunicorn, database_url, wait_until
from users.models import ApiKey, EndUser
from users.services import api_key_create

pytestmark = pytest.mark.slow

FAST_PARAMS = {
    "search": False,
    "max_epochs": 3,
    "eval_every_epochs": 3,
    "components": 8,
    "ease_lambda_factor": 4.0,
}


@pytest.fixture
def two_versions(transactional_db, settings, tmp_path):
    """Committed data, two trained versions (the first active), a read key."""
    from recommendations.models import ModelVersion
    from recommendations.services.demo import demo_data_load
    from recommendations.services.registry import model_version_activate
    from recommendations.services.training import model_version_train_now

    settings.RECSITE = {
        **settings.RECSITE,
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "ARTIFACTS_CACHE_DIR": str(tmp_path / "artifact-cache"),
    }
    log = synthetic.generate(n_users=80, n_items=60, n_interactions=1_500, seed=3)
    demo_data_load(log=log)
    versions = []
    for _ in range(2):
        version = model_version_train_now(
            trigger=ModelVersion.Trigger.COMMAND, params=FAST_PARAMS
        )
        assert version.status in ("active", "ready"), version.error
        versions.append(version)
    old, new = versions
    model_version_activate(version=old)
    new.refresh_from_db()
    assert new.status == "ready"
    user = EndUser.objects.values_list("external_id", flat=True).first()
    key = api_key_create(name="reload-read", kind=ApiKey.Kind.READ_ONLY)[1]
    return {"old": old, "new": new, "user": user, "key": key, "settings": settings}


def _server_env(tmp_path, recsite: dict, **extra: str) -> dict[str, str]:
    cache = django_settings.CACHES["default"]
    return {
        "DJANGO_SETTINGS_MODULE": "recsite.settings.base",
        "SECRET_KEY": "gunicorn-reload-test-secret-key-0123456789abcdef",
        "DEBUG": "0",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": database_url(
            connection.settings_dict,
            host=connection.settings_dict.get("HOST") or LOOPBACK,
            port=int(connection.settings_dict.get("PORT") or 5432),
        ),
        "REDIS_URL": cache["LOCATION"],
        "CACHE_KEY_PREFIX": cache.get("KEY_PREFIX", ""),
        "ARTIFACTS_DIR": recsite["ARTIFACTS_DIR"],
        "ARTIFACTS_CACHE_DIR": recsite["ARTIFACTS_CACHE_DIR"],
        "STATIC_ROOT": str(tmp_path / "static"),
        "SERVING_REFRESH_S": "0.5",
        "THROTTLE_READ_ONLY": "100000000/min",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def _worker_pids(server: Gunicorn) -> set[int]:
    try:
        return {c.pid for c in psutil.Process(server.process.pid).children()}
    except psutil.NoSuchProcess:
        return set()


class _Client:
    """GET recommendations for one user; `loop()` keeps doing it in a thread."""

    def __init__(self, base_url: str, user: str, key: str) -> None:
        self.url = f"{base_url}/api/v1/users/{user}/recommendations/?n=5"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.results: list[tuple[int | str, int | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self) -> tuple[int | str, int | None]:
        try:
            # A new connection each time: sync workers close it after the response.
            r = requests.get(self.url, headers=self.headers, timeout=30)
        except requests.RequestException as exc:
            return type(exc).__name__, None
        version = r.json().get("model_version") if r.status_code == 200 else None
        return r.status_code, version

    def versions(self, n: int) -> set:
        answers = [self.get() for _ in range(n)]
        assert all(code == 200 for code, _ in answers), answers
        return {version for _, version in answers}

    def loop(self) -> None:
        def run():
            while not self._stop.is_set():
                self.results.append(self.get())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> list[tuple[int | str, int | None]]:
        self._stop.set()
        self._thread.join(timeout=60)
        return self.results


def _start(env: dict, tmp_path, name: str) -> Gunicorn:
    server = Gunicorn(env, workers=2)
    server.start(tmp_path / f"{name}.log")
    wait_until(
        lambda: len(_worker_pids(server)) == 2,
        timeout=60,
        interval=0.1,
        what="two workers",
    )
    return server


def _log(server: Gunicorn) -> str:
    """The server's log without the access log lines."""
    return "\n".join(
        line for line in server.log_text().splitlines() if '"GET /' not in line
    )


def _loads_of(server: Gunicorn, version_id: int) -> int:
    """How many processes logged loading `version_id` (serving logs each load)."""
    needle = f"serving model version {version_id} from"
    return _log(server).count(needle)


def _activate_during_requests(server, client: _Client, version, until) -> list:
    from recommendations.services.registry import model_version_activate

    client.loop()
    try:
        time.sleep(0.5)  # requests are flowing before the activation
        model_version_activate(version=version)
        try:
            wait_until(until, timeout=30, interval=0.1, what="the switch")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; log:\n{_log(server)[-4000:]}") from None
        time.sleep(0.5)  # and a little after it
    finally:
        results = client.stop()
    return results


def test_master_loads_a_new_version_and_reforks_every_worker(two_versions, tmp_path):
    old, new = two_versions["old"], two_versions["new"]
    env = _server_env(tmp_path, two_versions["settings"].RECSITE)
    server = _start(env, tmp_path, "watcher")
    try:
        client = _Client(server.base_url, two_versions["user"], two_versions["key"])
        assert client.versions(6) == {old.pk}
        before = _worker_pids(server)

        def switched() -> bool:
            now = _worker_pids(server)
            return len(now) == 2 and not (now & before)

        results = _activate_during_requests(server, client, new, switched)

        codes = [code for code, _ in results]
        assert codes and all(code == 200 for code in codes), [
            c for c in codes if c != 200
        ]
        # Only workers forked after the master loaded `new` remain: all answer it.
        assert client.versions(10) == {new.pk}
        assert {v for _, v in results} <= {old.pk, new.pk}
        # Loaded once, by the master; the old workers waited for it instead of
        # building private copies, and the new ones share the master's.
        log = _log(server)
        assert _loads_of(server, new.pk) == 1, log[-3000:]
        assert "re-forking the workers" in log
    finally:
        server.stop()


def test_without_the_watcher_each_worker_loads_the_new_version(two_versions, tmp_path):
    old, new = two_versions["old"], two_versions["new"]
    env = _server_env(
        tmp_path, two_versions["settings"].RECSITE, GUNICORN_RELOAD_ON_ACTIVATION="0"
    )
    server = _start(env, tmp_path, "no-watcher")
    try:
        client = _Client(server.base_url, two_versions["user"], two_versions["key"])
        assert client.versions(6) == {old.pk}
        before = _worker_pids(server)

        # Each worker loads it on its own: the log shows one load per worker.
        results = _activate_during_requests(
            server, client, new, lambda: _loads_of(server, new.pk) >= 2
        )
        codes = [code for code, _ in results]
        assert codes and all(code == 200 for code in codes)
        assert client.versions(10) == {new.pk}
        assert _worker_pids(server) == before  # not re-forked
        log = _log(server)
        assert _loads_of(server, new.pk) == 2, log[-3000:]
        assert "re-forking the workers" not in log
    finally:
        server.stop()
