"""Deployment hardening: check --deploy, error pages without tracebacks, JSON errors."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from recsite.middleware import NOT_FOUND, SERVER_ERROR
from tests.security.urls import BOOM

ROOT = Path(__file__).resolve().parents[2]
TEST_URLS = "tests.security.urls"


def _production_env(**extra: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "DJANGO_", "DEBUG"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="recsite.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        ALLOWED_HOSTS="recs.example.com",
    )
    env.update(extra)
    return env


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_with_production_settings_has_no_warnings():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", env=_production_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_flags_a_weak_production_configuration():
    # The check is only meaningful if it can fail: a short key and DEBUG on must show.
    env = _production_env(SECRET_KEY="short", DEBUG="1")
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W009" in result.stderr + result.stdout  # weak SECRET_KEY
    assert "security.W018" in result.stderr + result.stdout  # DEBUG on


def test_production_settings_can_be_told_a_proxy_redirects_already():
    code = (
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE)"
    )
    on = _manage("shell", "--no-imports", "-c", code, env=_production_env())
    assert on.stdout.split() == ["True", "31536000", "True"], on.stderr
    off = _manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        env=_production_env(SECURE_SSL_REDIRECT="0"),
    )
    assert off.stdout.split()[0] == "False", off.stderr


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS, DEBUG=False)
def test_non_api_500_is_a_plain_page_without_traceback():
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Traceback" not in body
    assert BOOM not in body
    assert "RuntimeError" not in body


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_non_api_404_is_a_plain_page_without_debug_details():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "URLconf" not in body  # the DEBUG 404 page lists the URL patterns
    assert "admin/" not in body


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=TEST_URLS, DEBUG=False)
def test_api_500_is_json_without_traceback(api_client):
    api_client.raise_request_exception = False
    response = api_client.get("/api/v1/test-boom/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": SERVER_ERROR, "code": "server_error"}
    assert BOOM not in response.content.decode()


@pytest.mark.django_db
def test_unrouted_api_url_is_a_json_404(api_client):
    response = api_client.get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response.json() == {"detail": NOT_FOUND, "code": "not_found"}


@pytest.mark.django_db
def test_security_headers_are_sent(anon_client):
    response = anon_client.get("/api/v1/health/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
