"""Create the default periodic tasks (django-celery-beat), editable in the admin.

`python manage.py setup_periodic_tasks` re-creates missing ones (and `--reset`
restores the defaults) with the same definitions.
"""

from django.db import migrations


def create_schedules(apps, schema_editor):
    from recommendations.services.maintenance import periodic_tasks_setup

    periodic_tasks_setup(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0004_import_job_duplicates"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
