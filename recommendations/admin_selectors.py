"""Reads for the admin's recommendation pages: version charts and serving previews.

The previews call serving exactly as the API does (same function, same filters), so
what staff see is what a client gets.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from django.utils.safestring import SafeString

from recommendations.models import BusinessRule, Interaction, ModelVersion
from recsite.admin_charts import Series, bar_chart, line_chart

logger = logging.getLogger(__name__)

CHART_VERSIONS = 30
SAMPLE_USERS = 4
SAMPLE_USERS_SCAN = 500
SIMILAR_ITEMS_N = 10
SERVING_UNAVAILABLE = "Serving is not available: {error}"
STAGE_ORDER = ("extract", "features+fit", "evaluate", "save")

QUALITY_METRICS = (
    ("precision_at_10", "precision@10"),
    ("recall_at_10", "recall@10"),
    ("ndcg_at_10", "NDCG@10"),
)
COVERAGE_METRICS = (("coverage", "coverage"), ("cold_coverage", "cold coverage"))
COLD_METRICS = (
    ("cold_precision_at_10", "cold precision@10"),
    ("cold_recall_at_10", "cold recall@10"),
    ("cold_ndcg_at_10", "cold NDCG@10"),
)


# --- model versions ---------------------------------------------------------------


def model_versions_for_charts(*, limit: int = CHART_VERSIONS) -> list[ModelVersion]:
    """The latest trained versions (those with metrics), oldest first."""
    versions = (
        ModelVersion.objects.exclude(metrics={})
        .only("id", "status", "metrics", "timings", "created_at")
        .order_by("-id")[:limit]
    )
    return list(reversed(versions))


def _metric(version: ModelVersion, key: str) -> float | None:
    value = (version.metrics or {}).get(key)
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else None
    )


def _seconds(version: ModelVersion, key: str = "total") -> float | None:
    value = (version.timings or {}).get(key)
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else None
    )


def model_version_charts(
    *, versions: list[ModelVersion], highlight_pk: int | None = None
) -> dict[str, SafeString]:
    """Line charts of metrics and a bar chart of training time across `versions`."""
    labels = [f"v{v.pk}" for v in versions]
    index = next((i for i, v in enumerate(versions) if v.pk == highlight_pk), None)

    def lines(keys, title: str, y_max: float | None = None) -> SafeString:
        series = [
            Series(label, [_metric(v, key) for v in versions]) for key, label in keys
        ]
        series = [s for s in series if any(value is not None for value in s.values)]
        return line_chart(
            x_labels=labels,
            series=series,
            title=title,
            y_min=0.0,
            y_max=y_max,
            highlight_index=index,
            width=460,
            height=220,
        )

    return {
        "quality": lines(QUALITY_METRICS, "Ranking quality (validation)"),
        "coverage": lines(COVERAGE_METRICS, "Catalog coverage", y_max=1.0),
        "cold": lines(COLD_METRICS, "Cold items (held out of training)"),
        "training_time": bar_chart(
            labels=labels,
            values=[_seconds(v) or 0.0 for v in versions],
            title="Training time (s)",
            y_label="seconds",
            highlight_index=index,
            width=460,
            height=220,
        ),
    }


def model_version_stage_chart(*, version: ModelVersion) -> SafeString:
    """Seconds spent in each training stage of one version."""
    timings = version.timings or {}
    stages = [s for s in STAGE_ORDER if _seconds(version, s) is not None]
    stages += [
        key
        for key, value in timings.items()
        if key not in stages and key != "total" and isinstance(value, (int, float))
    ]
    return bar_chart(
        labels=stages,
        values=[_seconds(version, s) or 0.0 for s in stages],
        title=f"Where v{version.pk}'s training time went (s)",
        y_label="seconds",
        width=560,
        height=240,
    )


# --- serving previews ---------------------------------------------------------------


@dataclass
class PreviewItem:
    """One recommended item as the admin shows it."""

    rank: int
    item_pk: int | None
    external_id: str
    title: str
    score: float | None
    reason: str
    is_hidden: bool = False


@dataclass
class PreviewList:
    """A list of recommendations (or why there is none)."""

    strategy: str = ""
    items: list[PreviewItem] = field(default_factory=list)
    error: str = ""
    model_version: int | None = None

    @property
    def external_ids(self) -> list[str]:
        return [item.external_id for item in self.items]


def sample_users_for_preview(*, limit: int = SAMPLE_USERS) -> list[str]:
    """External ids of a few recently active users (by latest interactions)."""
    recent = Interaction.objects.order_by("-id").values_list(
        "user__external_id", flat=True
    )[:SAMPLE_USERS_SCAN]
    chosen: list[str] = []
    for external_id in recent:
        if external_id not in chosen:
            chosen.append(external_id)
            if len(chosen) == limit:
                break
    return chosen


def rule_describe(rule: BusinessRule) -> str:
    """A one-line description of an (unsaved) rule for headings."""
    target = rule.item or rule.category or rule.tag
    detail = ""
    if rule.action == BusinessRule.Action.PIN:
        detail = f" at position {rule.position}"
    elif rule.action == BusinessRule.Action.BOOST:
        detail = f" ×{rule.factor:g}"
    return f"{rule.action} {rule.target} “{target}”{detail}"


def _preview_list(response) -> PreviewList:
    """Serving's RecommendationResponse as the admin shows it."""
    return PreviewList(
        strategy=response.strategy,
        model_version=response.model_version,
        items=[
            PreviewItem(
                rank=rank,
                item_pk=item.pk,
                external_id=item.id,
                title=item.title,
                score=item.score,
                reason=("📌 pinned · " if getattr(item, "pinned", False) else "")
                + item.reason,
            )
            for rank, item in enumerate(response.items, start=1)
        ],
    )


def user_recommendations_preview(
    *,
    user_external_id: str,
    n: int = 10,
    category: str | None = None,
    tag: str | None = None,
    exclude: list[str] | tuple[str, ...] = (),
    include_seen: bool = False,
    max_per_category: int | None = None,
    extra_rules: list[BusinessRule] | tuple[BusinessRule, ...] = (),
    ignore_rule_ids: list[int] | tuple[int, ...] = (),
) -> PreviewList:
    """What the API returns now for this user with these filters (same serving call)."""
    from recommendations import serving

    try:
        response = serving.recommend_for_user(
            user_external_id=user_external_id,
            n=n,
            category=category,
            tag=tag,
            exclude=list(exclude),
            include_seen=include_seen,
            max_per_category=max_per_category,
            extra_rules=list(extra_rules),
            ignore_rule_ids=list(ignore_rule_ids),
        )
    except Exception as exc:  # the admin page must render even when serving cannot
        logger.exception(
            "admin preview of recommendations for %s failed", user_external_id
        )
        return PreviewList(error=SERVING_UNAVAILABLE.format(error=exc))
    return _preview_list(response)


def item_similar_preview(*, item, n: int = SIMILAR_ITEMS_N) -> PreviewList:
    """What `GET /recommendations/items/<id>/similar/` returns now for this item."""
    from recommendations import serving

    try:
        response = serving.similar_items(item_external_id=item.external_id, n=n)
    except Exception as exc:  # the admin page must render even when serving cannot
        logger.exception(
            "admin preview of items similar to %s failed", item.external_id
        )
        return PreviewList(error=SERVING_UNAVAILABLE.format(error=exc))
    return _preview_list(response)


@dataclass
class RulePreviewRow:
    """One user's list before and after a rule, with each entry's change marked."""

    user_external_id: str
    before: PreviewList
    after: PreviewList
    before_rows: list[dict] = field(default_factory=list)
    after_rows: list[dict] = field(default_factory=list)
    changed: int = 0


@dataclass
class RulePreview:
    description: str
    live_now: bool
    window_note: str
    users: list[RulePreviewRow]


def _diff_rows(
    before: PreviewList, after: PreviewList
) -> tuple[list[dict], list[dict], int]:
    """Mark removed (before only), added (after only) and moved entries."""
    before_rank = {item.external_id: item.rank for item in before.items}
    after_rank = {item.external_id: item.rank for item in after.items}
    before_rows, after_rows, changed = [], [], 0
    for item in before.items:
        css = "" if item.external_id in after_rank else "rs-removed"
        before_rows.append(
            {"external_id": item.external_id, "title": item.title, "css": css}
        )
    for item in after.items:
        old = before_rank.get(item.external_id)
        if old is None:
            css = "rs-added"
        elif old > item.rank:
            css = "rs-moved-up"
        elif old < item.rank:
            css = "rs-moved-down"
        else:
            css = ""
        changed += bool(css)
        after_rows.append(
            {"external_id": item.external_id, "title": item.title, "css": css}
        )
    changed += sum(1 for row in before_rows if row["css"])
    return before_rows, after_rows, changed


def rule_preview(
    *, rule: BusinessRule, user_external_ids: list[str] | None = None, n: int = 10
) -> RulePreview:
    """Sample users' lists without and with `rule` (unsaved, applied as if live)."""
    from django.utils import timezone

    now = timezone.now()
    live_now = (
        rule.is_active
        and (not rule.starts_at or rule.starts_at <= now)
        and (not rule.ends_at or rule.ends_at > now)
    )
    notes = []
    if not rule.is_active:
        notes.append("switched off")
    if rule.starts_at and rule.starts_at > now:
        notes.append(f"starts {timezone.localtime(rule.starts_at):%Y-%m-%d %H:%M}")
    if rule.ends_at and rule.ends_at <= now:
        notes.append(f"ended {timezone.localtime(rule.ends_at):%Y-%m-%d %H:%M}")
    # Preview the effect itself, whatever the window: a copy that is live now.
    candidate = copy.copy(rule)
    candidate.is_active, candidate.starts_at, candidate.ends_at = True, None, None
    users = user_external_ids or sample_users_for_preview()
    rows = []
    for external_id in users:
        before = user_recommendations_preview(user_external_id=external_id, n=n)
        # Editing a saved rule: "after" replaces its saved version by the form's.
        after = user_recommendations_preview(
            user_external_id=external_id,
            n=n,
            extra_rules=[candidate],
            ignore_rule_ids=[rule.pk] if rule.pk else [],
        )
        before_rows, after_rows, changed = _diff_rows(before, after)
        rows.append(
            RulePreviewRow(
                user_external_id=external_id,
                before=before,
                after=after,
                before_rows=before_rows,
                after_rows=after_rows,
                changed=changed,
            )
        )
    return RulePreview(
        description=rule_describe(rule),
        live_now=live_now,
        window_note=", ".join(notes),
        users=rows,
    )
