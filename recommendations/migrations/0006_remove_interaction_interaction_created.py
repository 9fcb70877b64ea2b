"""Drop the unused created_at index of interactions (ingestion paid for it per row).

Concurrently, so the drop does not queue behind a long training snapshot and hold
up every query on the table meanwhile (hence not atomic).
"""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("recommendations", "0005_default_periodic_tasks"),
    ]

    operations = [
        RemoveIndexConcurrently(
            model_name="interaction",
            name="interaction_created",
        ),
    ]
