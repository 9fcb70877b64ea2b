"""The item catalog: items with categories, tags and free-form attributes."""

from django.db import models
from django.db.models import F, Q

from recsite.models import TimeStampedModel


class Category(TimeStampedModel):
    """A category name; items belong to many."""

    name = models.CharField(max_length=255, unique=True)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(TimeStampedModel):
    """A tag name; items carry many."""

    name = models.CharField(max_length=255, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Items that are hidden or have an availability window: the only ones that can be
# unavailable at some moment (a superset, indexed).
MAYBE_UNAVAILABLE = (
    Q(is_hidden=True)
    | Q(available_from__isnull=False)
    | Q(available_until__isnull=False)
)


class Item(TimeStampedModel):
    """A recommendable item, addressed by the client's own id."""

    external_id = models.CharField("id", max_length=255, unique=True)
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    categories = models.ManyToManyField(Category, blank=True, related_name="items")
    tags = models.ManyToManyField(Tag, blank=True, related_name="items")
    attributes = models.JSONField(default=dict, blank=True)
    is_hidden = models.BooleanField(default=False, db_index=True)
    available_from = models.DateTimeField(null=True, blank=True)
    available_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(available_from__isnull=True)
                | Q(available_until__isnull=True)
                | Q(available_until__gt=F("available_from")),
                name="item_availability_window_ordered",
            )
        ]
        indexes = [
            # Serving reads the items that may be unavailable every few seconds per
            # process: without this, a scan of the whole catalog (25 ms at 100k).
            models.Index(
                fields=["id"],
                name="item_maybe_unavailable",
                condition=MAYBE_UNAVAILABLE,
            )
        ]

    def __str__(self) -> str:
        return self.title or self.external_id
