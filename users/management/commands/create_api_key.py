"""`python manage.py create_api_key NAME [--read-only | --public]`: prints the key alone."""

from django.core.management.base import BaseCommand

from users.models import ApiKey
from users.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it (it is stored hashed and never shown again)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--read-only", action="store_true", help="May only read.")
        kind.add_argument(
            "--public",
            action="store_true",
            help="Safe in a web page: recommendations and interactions only.",
        )

    def handle(self, *args, name, read_only, public, **options):
        kind = ApiKey.Kind.READ_ONLY if read_only else ApiKey.Kind.PUBLIC if public else ApiKey.Kind.WRITE
        _, raw_key = api_key_create(name=name, kind=kind)
        self.stdout.write(raw_key)
