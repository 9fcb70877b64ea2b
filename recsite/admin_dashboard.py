"""The admin dashboard (the admin index): figures, a chart, schedules, recent failures.

Reads only; about ten queries whatever the size of the data.
"""

import datetime as dt
import logging
from dataclasses import dataclass

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from items.models import Item
from recommendations.models import ImportJob, Interaction, ModelVersion
from recsite.admin_charts import bar_chart
from users.models import EndUser

logger = logging.getLogger(__name__)

CHART_DAYS = 30
UPCOMING_RUNS = 8
RECENT_FAILURES = 5


@dataclass(frozen=True)
class ScheduledRun:
    """A PeriodicTask and when it is expected to run next."""

    task: PeriodicTask
    next_run_at: dt.datetime | None
    schedule_text: str


def interaction_counts(*, now: dt.datetime) -> dict:
    """Interactions in all, in the last 24 h and 7 days (event time), and the latest."""
    return Interaction.objects.aggregate(
        latest=Max("timestamp"),
        total=Count("id"),
        last_24h=Count("id", filter=Q(timestamp__gte=now - dt.timedelta(hours=24))),
        last_7d=Count("id", filter=Q(timestamp__gte=now - dt.timedelta(days=7))),
    )


def interactions_per_day(
    *, end: dt.datetime, days: int = CHART_DAYS
) -> list[tuple[dt.date, int]]:
    """(day, count) for each of the `days` days up to `end`, zeros included."""
    tz = timezone.get_current_timezone()
    last = timezone.localtime(end, tz).date()
    first = last - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz)
    stop = timezone.make_aware(
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min), tz
    )
    rows = (
        Interaction.objects.filter(timestamp__gte=start, timestamp__lt=stop)
        .annotate(day=TruncDate("timestamp", tzinfo=tz))
        .values("day")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_day = {row["day"]: row["count"] for row in rows}
    return [
        (first + dt.timedelta(days=i), by_day.get(first + dt.timedelta(days=i), 0))
        for i in range(days)
    ]


def next_run_at(task: PeriodicTask, *, now: dt.datetime) -> dt.datetime | None:
    """When beat should next run `task` (None: unknown, or a one-off already done)."""
    try:
        if task.clocked_id:
            return (
                None if task.one_off and task.last_run_at else task.clocked.clocked_time
            )
        if task.start_time and task.start_time > now:
            return task.start_time
        last = task.last_run_at or task.start_time or task.date_changed or now
        remaining = task.schedule.remaining_estimate(last)
        return max(now + remaining, now)
    except Exception:  # a malformed schedule must not break the dashboard
        logger.warning(
            "Cannot compute the next run of periodic task %s", task.pk, exc_info=True
        )
        return None


def upcoming_runs(
    *, now: dt.datetime, limit: int = UPCOMING_RUNS
) -> list[ScheduledRun]:
    """Enabled periodic tasks, soonest first."""
    tasks = PeriodicTask.objects.filter(enabled=True).select_related(
        "interval", "crontab", "solar", "clocked"
    )
    runs = [
        ScheduledRun(
            task=t,
            next_run_at=next_run_at(t, now=now),
            # Crontabs print a field legend; the dashboard keeps the expression.
            schedule_text=str(t.scheduler or "—").replace(" (m/h/dM/MY/d)", ""),
        )
        for t in tasks
    ]
    far = now + dt.timedelta(days=36500)
    runs.sort(key=lambda run: run.next_run_at or far)
    return runs[:limit]


def serving_health() -> dict:
    """Serving's state in this process (ok / fallback / error / none); never raises."""
    from recommendations import serving

    try:
        return serving.model_health()
    except Exception as exc:  # the dashboard must render when serving cannot
        logger.exception("serving health for the dashboard failed")
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def model_freshness() -> dict | None:
    """How far the active model is behind the data (a periodic task caches it)."""
    try:
        from recommendations.services.maintenance import model_freshness_cached

        return model_freshness_cached()
    except Exception:  # optional figures: never break the dashboard
        logger.warning("model freshness unavailable for the dashboard", exc_info=True)
        return None


def dashboard_context(*, now: dt.datetime | None = None) -> dict:
    """Everything the dashboard template shows."""
    now = now or timezone.now()
    counts = interaction_counts(now=now)
    item_counts = Item.objects.aggregate(
        total=Count("id"), hidden=Count("id", filter=Q(is_hidden=True))
    )
    # The chart ends today, or on the latest event's day when nothing happened lately
    # (imported history): an empty month says less than the last active one.
    latest = counts["latest"]
    quiet = latest is not None and latest < now - dt.timedelta(days=CHART_DAYS)
    chart_end = latest if quiet else now
    per_day = interactions_per_day(end=chart_end)
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    in_flight = ModelVersion.objects.filter(status__in=ModelVersion.IN_FLIGHT).first()
    failed_versions = list(
        ModelVersion.objects.filter(status=ModelVersion.Status.FAILED)
        .only("id", "status", "trigger", "error", "finished_at", "created_at")
        .order_by("-id")[:RECENT_FAILURES]
    )
    failed_imports = list(
        ImportJob.objects.filter(status=ImportJob.Status.FAILED)
        .only(
            "id",
            "kind",
            "status",
            "original_name",
            "error",
            "finished_at",
            "created_at",
        )
        .order_by("-id")[:RECENT_FAILURES]
    )
    active_since = None
    if active is not None:
        active_since = active.activated_at or active.finished_at or active.created_at
    return {
        "dashboard": {
            "now": now,
            "users": EndUser.objects.count(),
            "items": item_counts["total"],
            "items_hidden": item_counts["hidden"],
            "interactions": counts["total"],
            "interactions_24h": counts["last_24h"],
            "interactions_7d": counts["last_7d"],
            "latest_interaction_at": latest,
            "per_day_chart": bar_chart(
                labels=[day.strftime("%b %d") for day, _ in per_day],
                values=[count for _, count in per_day],
                title=(
                    f"Interactions per day ({CHART_DAYS} days to {chart_end:%Y-%m-%d}, "
                    "the latest activity)"
                    if quiet
                    else f"Interactions per day (last {CHART_DAYS} days)"
                ),
                y_label="interactions",
                width=860,
                height=230,
            ),
            "active_version": active,
            "active_since": active_since,
            "in_flight": in_flight,
            "serving": serving_health(),
            "freshness": model_freshness(),
            "upcoming_runs": upcoming_runs(now=now),
            "failed_versions": failed_versions,
            "failed_imports": failed_imports,
        }
    }
