"""`python manage.py setup_demo`: demo data, a staff login and an API key for start.sh.

Idempotent. Unless `DEMO_DATA=0`: loads the demo catalog into an empty database and
queues a training while no model version can serve. Always: creates or resets the
staff superuser `demo`, keeps one `demo` API key, and prints a banner.
The secrets live in `.local/` (git-ignored, mode 600) so every run prints the same ones.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import transaction

from items.models import Item
from recommendations.models import ModelVersion
from recommendations.services.registry import model_version_request_training
from users.authentication import hash_key
from users.models import ApiKey, EndUser
from users.services import api_key_create

DEMO_USERNAME = "demo"
DEMO_KEY_NAME = "demo"
SEED_MISSING = "The seed_demo command is not available yet: no demo data loaded."
TRAINING_NOTE = (
    "\n  A first model is training in the background (about a minute); until it is"
    "\n  active, recommendations fall back to popular items."
)


def _read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


class Command(BaseCommand):
    help = "Load demo data once, ensure the demo staff user and API key, print them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--local-dir",
            default=str(Path(settings.BASE_DIR) / ".local"),
            help="Where the demo password and API key are kept (default: .local/).",
        )
        parser.add_argument(
            "--port", default=os.environ.get("PORT") or "8000", help="Port in the URLs."
        )

    def handle(self, *args, local_dir, port, **options):
        local = Path(local_dir)
        demo = os.environ.get("DEMO_DATA", "1") != "0"
        if demo:
            self._seed()
        training = demo and self._ensure_first_model()
        user, password = self._ensure_staff_user(local / "demo_password")
        raw_key = self._ensure_api_key(local / "demo_api_key", created_by=user)
        banner = self._banner(port=port, password=password, raw_key=raw_key)
        self.stdout.write(banner + (TRAINING_NOTE if training else ""))

    def _seed(self) -> None:
        """Load the demo data into an empty catalog."""
        if Item.objects.exists():
            return
        if "seed_demo" not in get_commands():
            self.stderr.write(SEED_MISSING)
            return
        self.stderr.write("Loading the demo data (seed_demo)...")
        call_command("seed_demo", stdout=self.stderr)

    def _ensure_first_model(self) -> bool:
        """Queue a training while no model can serve; True if one is in flight.

        So the demo shows personalised results without waiting for the nightly
        schedule, also when a previous run was stopped mid-training. Single flight:
        an already queued or running training is reused.
        """
        if not Item.objects.exists():
            return False
        usable = (ModelVersion.Status.ACTIVE, ModelVersion.Status.READY)
        if ModelVersion.objects.filter(status__in=usable).exists():
            return False
        version, _ = model_version_request_training(
            trigger=ModelVersion.Trigger.COMMAND
        )
        return version.in_flight

    def _ensure_staff_user(self, password_file: Path):
        password = _read_secret(password_file)
        if password is None:
            password = secrets.token_urlsafe(12)
            _write_secret(password_file, password)
        User = get_user_model()
        with transaction.atomic():
            user, _ = User.objects.get_or_create(username=DEMO_USERNAME)
            user.is_staff = True
            user.is_superuser = True
            user.is_active = True
            user.set_password(password)
            user.save()
        return user, password

    def _ensure_api_key(self, key_file: Path, *, created_by) -> str:
        raw_key = _read_secret(key_file)
        if raw_key is not None:
            if ApiKey.objects.filter(
                hashed_key=hash_key(raw_key), is_active=True
            ).exists():
                return raw_key
        _, raw_key = api_key_create(
            name=DEMO_KEY_NAME, kind=ApiKey.Kind.WRITE, created_by=created_by
        )
        _write_secret(key_file, raw_key)
        return raw_key

    def _banner(self, *, port: str, password: str, raw_key: str) -> str:
        base = f"http://127.0.0.1:{port}"
        first_user = (
            EndUser.objects.order_by("id").values_list("external_id", flat=True).first()
        )
        example_user = quote(first_user or "user-1", safe="")
        rule = "=" * 72
        return "\n".join(
            [
                rule,
                "recsite is ready",
                rule,
                f"  API docs      {base}/api/docs/",
                f"  Admin         {base}/admin/",
                f"  Health        {base}/api/v1/health/",
                "",
                f"  Staff login   user: {DEMO_USERNAME}   password: {password}",
                f"  API key       {raw_key}",
                "                (read-write; kept in .local/demo_api_key)",
                "",
                "  Try:",
                f'    curl -H "Authorization: Bearer {raw_key}" \\',
                f"         {base}/api/v1/users/{example_user}/recommendations/",
                rule,
            ]
        )
