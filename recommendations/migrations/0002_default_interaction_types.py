"""Seed the interaction types staff start from (editable in the admin)."""

from django.db import migrations

DEFAULT_TYPES = [
    # name, weight, is_positive, description
    ("view", 1.0, True, "The user looked at the item."),
    ("click", 1.5, True, "The user clicked the item in a list."),
    ("like", 4.0, True, "The user liked the item."),
    ("dislike", 4.0, False, "The user disliked the item: pushes it away."),
    ("add_to_cart", 3.0, True, "The user put the item in their cart."),
    ("purchase", 5.0, True, "The user bought the item."),
    ("rating", 3.0, True, "An explicit rating; `value` holds the score."),
]


def create_types(apps, schema_editor):
    InteractionType = apps.get_model("recommendations", "InteractionType")
    for name, weight, is_positive, description in DEFAULT_TYPES:
        InteractionType.objects.get_or_create(
            name=name,
            defaults={"weight": weight, "is_positive": is_positive, "description": description},
        )


class Migration(migrations.Migration):
    dependencies = [("recommendations", "0001_initial")]

    operations = [migrations.RunPython(create_types, migrations.RunPython.noop)]
