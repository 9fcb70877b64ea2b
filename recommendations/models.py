"""Interactions, the model registry, staff business rules and import jobs."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from recsite.models import TimeStampedModel


class InteractionType(TimeStampedModel):
    """A kind of interaction (view, purchase, …) with the weight training gives it."""

    name = models.SlugField(max_length=50, unique=True)
    weight = models.FloatField(
        default=1.0, help_text="How much one interaction of this type counts in training."
    )
    is_positive = models.BooleanField(
        default=True, help_text="Negative types (e.g. dislike) push an item away."
    )
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(weight__gte=0), name="interaction_type_weight_gte_0")
        ]

    def __str__(self) -> str:
        return self.name


class Interaction(models.Model):
    """One event of a user with an item. Append-only."""

    id = models.BigAutoField(primary_key=True)
    # The composite (user, -timestamp) index below serves per-user history.
    user = models.ForeignKey(
        "users.EndUser", on_delete=models.CASCADE, related_name="interactions", db_index=False
    )
    item = models.ForeignKey("items.Item", on_delete=models.CASCADE, related_name="interactions")
    # No database constraint: its per-row check (1,000 lookups and key-share locks
    # of the same few rows per batch, multixacts between concurrent batches) cost
    # ingestion a fifth of its PostgreSQL time. Ingestion reads the types inside
    # its transaction; Django still refuses to delete a type in use (PROTECT).
    type = models.ForeignKey(
        InteractionType,
        on_delete=models.PROTECT,
        related_name="interactions",
        db_index=False,
        db_constraint=False,
    )
    value = models.FloatField(null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    # Unique when given (partial unique constraint below): a retried batch is idempotent.
    event_id = models.CharField(max_length=255, null=True, blank=True)
    recommendation_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-timestamp", "-id"]
        # Every index costs each ingested row an insertion and its WAL; no query
        # reads interactions by created_at, so that column has none.
        indexes = [
            models.Index(fields=["user", "-timestamp"], name="interaction_user_time"),
        ]
        constraints = [
            # Partial, so rows without an event id cost no index entry; ingestion
            # relies on it with `ON CONFLICT (event_id) WHERE event_id IS NOT NULL`.
            models.UniqueConstraint(
                fields=["event_id"],
                condition=Q(event_id__isnull=False),
                name="interaction_event_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.type_id} {self.item_id}"


class ModelVersion(TimeStampedModel):
    """One trained (or training) model; published artifacts are never changed."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        TRAINING = "training"
        READY = "ready"
        ACTIVE = "active"
        FAILED = "failed"
        REJECTED = "rejected"

    class Trigger(models.TextChoices):
        API = "api"
        SCHEDULE = "schedule"
        COMMAND = "command"
        ADMIN = "admin"

    IN_FLIGHT = (Status.QUEUED, Status.TRAINING)
    # progress_stage of a version that is trained (ready) and waits for the quality
    # gate, which activates or rejects it a moment later.
    STAGE_GATE = "quality gate"

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.API)
    params = models.JSONField(default=dict, blank=True)
    data_stats = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    artifact_path = models.CharField(max_length=1000, blank=True)
    error = models.TextField(blank=True)
    progress_stage = models.CharField(max_length=64, blank=True)
    progress_percent = models.FloatField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    # Highest Interaction.id in the training snapshot (to skip unchanged retrains).
    data_watermark = models.BigIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=255, blank=True)

    @property
    def in_flight(self) -> bool:
        """Queued, training, or trained and not yet through the quality gate: its
        status is about to change, so pages showing it keep following it."""
        return self.status in self.IN_FLIGHT or (
            self.status == self.Status.READY and self.progress_stage == self.STAGE_GATE
        )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="active"),
                name="one_active_model_version",
            ),
            # Single flight: at most one version queued or training at a time.
            models.UniqueConstraint(
                models.Value(True, output_field=models.BooleanField()),
                condition=Q(status__in=["queued", "training"]),
                name="one_model_version_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.pk} ({self.status})"


class BusinessRule(TimeStampedModel):
    """A staff rule applied at request time: pin, boost or block."""

    class Action(models.TextChoices):
        PIN = "pin"
        BOOST = "boost"
        BLOCK = "block"

    class Target(models.TextChoices):
        ITEM = "item"
        CATEGORY = "category"
        TAG = "tag"

    name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=8, choices=Action.choices)
    target = models.CharField(max_length=10, choices=Target.choices)
    item = models.ForeignKey(
        "items.Item", null=True, blank=True, on_delete=models.CASCADE, related_name="rules"
    )
    category = models.ForeignKey(
        "items.Category", null=True, blank=True, on_delete=models.CASCADE, related_name="rules"
    )
    tag = models.ForeignKey(
        "items.Tag", null=True, blank=True, on_delete=models.CASCADE, related_name="rules"
    )
    position = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Pin: 1-based position in the list."
    )
    factor = models.FloatField(null=True, blank=True, help_text="Boost: score multiplier.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(target="item", item__isnull=False, category__isnull=True, tag__isnull=True)
                    | Q(target="category", item__isnull=True, category__isnull=False, tag__isnull=True)
                    | Q(target="tag", item__isnull=True, category__isnull=True, tag__isnull=False)
                ),
                name="business_rule_target_matches",
            ),
            models.CheckConstraint(
                condition=~Q(action="pin") | Q(position__isnull=False, position__gte=1),
                name="business_rule_pin_has_position",
            ),
            models.CheckConstraint(
                condition=~Q(action="boost") | Q(factor__isnull=False, factor__gt=0),
                name="business_rule_boost_has_factor",
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True)
                | Q(ends_at__isnull=True)
                | Q(ends_at__gt=models.F("starts_at")),
                name="business_rule_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        target = self.item or self.category or self.tag
        return self.name or f"{self.action} {self.target} {target}"


class ImportJob(TimeStampedModel):
    """A background import of a CSV or JSON-lines file of users, items or interactions."""

    class Kind(models.TextChoices):
        USERS = "users"
        ITEMS = "items"
        INTERACTIONS = "interactions"

    class Format(models.TextChoices):
        CSV = "csv"
        JSONL = "jsonl"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    format = models.CharField(max_length=8, choices=Format.choices)
    # Empty for `manage.py import_file` runs, which read a local path in place.
    file = models.FileField(upload_to="imports/%Y/%m/%d/", max_length=500, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    rows_total = models.BigIntegerField(null=True, blank=True)
    accepted = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    # Interactions whose event_id was already recorded (neither accepted nor rejected).
    duplicates = models.BigIntegerField(default=0)
    # The first rejected rows: [{"line": n, "errors": {field: [message]}}].
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} {self.kind} ({self.status})"
