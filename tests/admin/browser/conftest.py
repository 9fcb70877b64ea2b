"""Headless Chromium (Debian's, driven by Playwright) against pytest-django's server.

Never `playwright install`: the browser is the system one (`/usr/bin/chromium`, or
`CHROMIUM_BIN` / `CHROMIUM_PATH`). The tests skip, loudly, only when no Chromium
binary exists.
Screenshots go to `.local/test-artifacts/screenshots/` (git-ignored).
"""

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API runs an event loop in this thread; Django would then refuse
# ORM calls made by the test itself (fixtures, assertions). They are plain sync code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_CANDIDATES = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / ".local" / "test-artifacts" / "screenshots"
STAFF_PASSWORD = "staff-pass-123"
NO_CHROMIUM = (
    "NO CHROMIUM BINARY FOUND: browser tests of the admin did NOT run. Install it with "
    "`apt-get install -y chromium chromium-driver` or set CHROMIUM_BIN."
)


def chromium_path() -> str | None:
    """The Chromium to drive: $CHROMIUM_BIN or $CHROMIUM_PATH, else a system one."""
    candidates = [
        os.environ.get("CHROMIUM_BIN"),
        os.environ.get("CHROMIUM_PATH"),
        *CHROMIUM_CANDIDATES,
        shutil.which("chromium"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium():
    """A Playwright instance and the Chromium executable."""
    path = chromium_path()
    if path is None:
        warnings.warn(NO_CHROMIUM, stacklevel=1)
        print(f"\n\n{'!' * 80}\n{NO_CHROMIUM}\n{'!' * 80}\n")  # noqa: T201 - be loud in CI logs
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright, path


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser profile (its own user-data dir) and page for one test."""
    playwright, path = chromium
    profile = tempfile.mkdtemp(prefix="recsite-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=path,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.base_url = live_server.url
    yield tab
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def staff_page(page, django_user_model):
    """The page, logged in to the admin as a staff superuser."""
    django_user_model.objects.create_superuser(
        "staff", "staff@example.com", STAFF_PASSWORD
    )
    page.goto(f"{page.base_url}/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#rs-users")  # the dashboard
    return page


def screenshot(page, name: str) -> Path:
    """Save a full-page PNG as a test artifact; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
