"""End-users of the client application, and the API keys that call recsite."""

from django.conf import settings
from django.db import models

from recsite.models import TimeStampedModel


class EndUser(TimeStampedModel):
    """A user of the client application, addressed by the client's own id."""

    external_id = models.CharField("id", max_length=255, unique=True)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "end-user"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.external_id


class ApiKey(TimeStampedModel):
    """A bearer key for the REST API; only its SHA-256 is stored."""

    class Kind(models.TextChoices):
        WRITE = "write", "Read and write"
        READ_ONLY = "read_only", "Read only"
        PUBLIC = "public", "Public (browser: recommendations and interactions only)"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WRITE)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_keys",
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.get_kind_display()})"
