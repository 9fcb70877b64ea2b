"""`manage.py setup_periodic_tasks [--reset]`: create the default beat schedules."""

from django.core.management.base import BaseCommand

from recommendations.services.maintenance import periodic_tasks_setup


class Command(BaseCommand):
    help = (
        "Create the default periodic tasks (nightly retrain, popularity refresh, "
        "stale-run reaper, fold-in, prune) that are missing. Idempotent; staff edits "
        "are kept unless --reset restores the defaults."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Also restore the schedule, task and enabled flag of existing ones.",
        )

    def handle(self, *args, reset: bool = False, **options):
        outcome = periodic_tasks_setup(reset=reset)
        for name, what in outcome.items():
            self.stdout.write(f"{what:8} {name}")
