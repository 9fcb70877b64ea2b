"""Cheaper interaction ingestion: no created_at index, no database FK on type.

Nothing reads interactions by created_at, yet every ingested row paid an index
insertion for it. The type foreign key's per-row check cost about a fifth of
ingestion's PostgreSQL time; Django's PROTECT still guards deleting a type in use.
The index goes concurrently, so the drop does not queue behind a long training
snapshot and hold up every query on the table meanwhile (hence not atomic).
"""

import django.db.models.deletion
from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations, models


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
        migrations.AlterField(
            model_name="interaction",
            name="type",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="interactions",
                to="recommendations.interactiontype",
            ),
        ),
    ]
