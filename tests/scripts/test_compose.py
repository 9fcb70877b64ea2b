"""docker-compose.yml and the container entry point, checked without a Docker engine.

The compose file shows the service scaled out: several web replicas behind one
proxy that owns the published port, several default-queue workers, one release job
that migrates before any of them starts, and single training and beat containers.
The entry point's roles are run for real with stand-ins for python and gunicorn.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"


def _replicas(name: str) -> int:
    return int((SERVICES[name].get("deploy") or {}).get("replicas", 1))


def _depends(name: str) -> dict:
    return SERVICES[name].get("depends_on") or {}


def test_web_and_worker_run_several_replicas_training_and_beat_one():
    assert _replicas("web") >= 2
    assert _replicas("worker") >= 2
    assert _replicas("training") == 1
    assert _replicas("beat") == 1


def test_only_the_proxy_publishes_a_port():
    published = {name for name, svc in SERVICES.items() if svc.get("ports")}
    assert published == {"proxy"}
    (port,) = SERVICES["proxy"]["ports"]
    assert port.endswith(":8080")
    assert "${PORT:-8000}" in port and "${PUBLISH_ADDRESS:-127.0.0.1}" in port
    # web listens on a fixed port inside its containers, whatever .env says
    assert SERVICES["web"]["environment"]["PORT"] == "8000"


def test_the_proxy_config_is_mounted_and_spreads_over_the_web_replicas():
    (mount,) = SERVICES["proxy"]["volumes"]
    source, target, mode = mount.split(":")
    conf = (ROOT / source).read_text()
    assert target == "/etc/nginx/conf.d/default.conf" and mode == "ro"
    assert "listen 8080;" in conf
    # Docker's DNS, asked again so replicas added later are used
    assert re.search(r"resolver 127\.0\.0\.11 valid=\d+s", conf)
    assert "set $recsite_web http://web:8000;" in conf
    assert "proxy_pass $recsite_web;" in conf
    # file imports up to the application's own limit get through the proxy
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    limit = settings.RECSITE["IMPORT_MAX_UPLOAD_BYTES"]
    assert size and int(size.group(1)) * 1024 * 1024 >= limit


def test_one_release_job_migrates_before_the_app_containers_start():
    release = SERVICES["release"]
    assert release["command"] == ["release"] and release["restart"] == "no"
    assert _replicas("release") == 1
    assert SERVICES["web"]["environment"]["MIGRATE_ON_START"] == "0"
    for name in ("web", "worker", "training", "beat"):
        assert _depends(name)["release"] == {
            "condition": "service_completed_successfully"
        }, name


def test_every_dependency_names_a_service():
    for name in SERVICES:
        assert set(_depends(name)) <= set(SERVICES), name


# ------------------------------------------------------------------ entry point


@pytest.fixture
def stand_ins(tmp_path):
    """`python` and `gunicorn` that log their arguments and succeed."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "gunicorn"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\ncat >/dev/null\n')
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)

    def run(*args: str, **env: str) -> list[str]:
        environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env}
        subprocess.run(
            ["sh", str(ENTRYPOINT), *args],
            env=environ,
            stdin=subprocess.DEVNULL,
            check=True,
            timeout=30,
        )
        return log.read_text().splitlines() if log.exists() else []

    return run


def test_the_release_role_migrates_and_creates_the_schedules(stand_ins):
    calls = stand_ins("release")
    assert "python manage.py migrate --noinput" in calls
    assert "python manage.py setup_periodic_tasks" in calls
    assert not any(c.startswith("gunicorn") for c in calls)


def test_web_replicas_do_not_migrate_when_told_not_to(stand_ins):
    calls = stand_ins("web", MIGRATE_ON_START="0", PORT="8000")
    assert not any("migrate" in c for c in calls)
    (server,) = [c for c in calls if c.startswith("gunicorn")]
    assert "--bind 0.0.0.0:8000" in server


def test_a_single_web_container_still_migrates_by_default(stand_ins):
    calls = stand_ins("web", PORT="8000")
    assert "python manage.py migrate --noinput" in calls
    assert calls[-1].startswith("gunicorn")
