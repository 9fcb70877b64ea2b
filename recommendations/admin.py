"""Admin for interactions and their types, model versions, business rules and imports.

Entry points only: activation goes through the registry service, "train now" through the
single-flight maintenance service, rule writes through the rules service.
"""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from recommendations.admin_selectors import (
    STAGE_ORDER,
    model_version_charts,
    model_version_stage_chart,
    model_versions_for_charts,
)
from recommendations.models import (
    BusinessRule,
    ImportJob,
    Interaction,
    InteractionType,
    ModelVersion,
)
from recsite.admin_widgets import (
    JSON_FORMFIELD_OVERRIDES,
    badge,
    key_values,
    progress_bar,
)

TRAIN_QUEUED = "Training v{id} queued. This page follows its progress."
TRAIN_ALREADY = (
    "Version v{id} is already {status}: showing its progress (one training at a time)."
)
TRAIN_SKIPPED = "Nothing to train."
ACTIVATED = "Version v{id} is now the active model: recommendations use it at once."
SELECT_ONE = "Select exactly one version to activate."


@admin.register(InteractionType)
class InteractionTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "weight", "is_positive", "description", "updated_at")
    list_editable = ("weight", "is_positive")
    search_fields = ("name",)
    ordering = ("name",)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": "Weights apply from the next training.",
        }
        return super().changelist_view(request, extra_context)


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = (
        "timestamp",
        "user_link",
        "item_link",
        "type",
        "value",
        "recommendation_id",
    )
    list_select_related = ("user", "item", "type")
    list_filter = ("type",)
    search_fields = ("=user__external_id", "=item__external_id", "=event_id")
    search_help_text = "Exact user id, item id or event id."
    # The primary key follows arrival order and is indexed: no sort of the whole table.
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False
    raw_id_fields = ("user", "item")

    def has_add_permission(self, request):
        return False  # interactions arrive through the API and imports

    def has_change_permission(self, request, obj=None):
        return False  # append-only

    @admin.display(description="user", ordering="user__external_id")
    def user_link(self, obj: Interaction):
        url = reverse("admin:users_enduser_change", args=[obj.user_id])
        return format_html('<a href="{}">{}</a>', url, obj.user.external_id)

    @admin.display(description="item", ordering="item__external_id")
    def item_link(self, obj: Interaction):
        url = reverse("admin:items_item_change", args=[obj.item_id])
        return format_html('<a href="{}">{}</a>', url, obj.item)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "status_badge",
        "trigger",
        "created",
        "training_seconds",
        "n_interactions",
        "precision_at_10",
        "ndcg_at_10",
        "coverage",
        "progress",
    )
    list_filter = ("status", "trigger")
    ordering = ("-id",)
    list_per_page = 30
    actions = ("activate_selected",)
    change_list_template = "admin/recommendations/modelversion/change_list.html"
    change_form_template = "admin/recommendations/modelversion/change_form.html"
    fieldsets = (
        (None, {"fields": ("status_badge", "progress", "trigger", "error_text")}),
        (
            "Timeline",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                    "activated_at",
                )
            },
        ),
        (
            "Training parameters",
            {
                "fields": ("params_json", "artifact_path", "data_watermark", "task_id"),
                "classes": ("collapse",),
            },
        ),
    )
    readonly_fields = (
        "status_badge",
        "progress",
        "trigger",
        "error_text",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "activated_at",
        "params_json",
        "artifact_path",
        "data_watermark",
        "task_id",
    )

    def has_add_permission(self, request):
        return False  # versions are created by training ("Train now")

    def has_delete_permission(self, request, obj=None):
        return (
            False  # pruning (a periodic task) removes old versions and their artifacts
        )

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("train/", wrap(self.train_view), name=f"{prefix}_train"),
            path(
                "<int:pk>/activate/",
                wrap(self.activate_view),
                name=f"{prefix}_activate",
            ),
            path(
                "<int:pk>/progress/",
                wrap(self.progress_view),
                name=f"{prefix}_progress",
            ),
            *super().get_urls(),
        ]

    # --- columns ---

    @admin.display(description="version", ordering="id")
    def version(self, obj: ModelVersion) -> str:
        return f"v{obj.pk}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: ModelVersion) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ModelVersion):
        return badge(obj.status)

    @admin.display(description="training time")
    def training_seconds(self, obj: ModelVersion) -> str:
        seconds = (obj.timings or {}).get("total")
        return f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "–"

    def _stat(self, obj: ModelVersion, *keys: str) -> str:
        for key in keys:
            value = (obj.data_stats or {}).get(key)
            if isinstance(value, (int, float)):
                return f"{value:,}"
        return "–"

    @admin.display(description="users")
    def n_users(self, obj):
        return self._stat(obj, "n_users")

    @admin.display(description="items")
    def n_items(self, obj):
        return self._stat(obj, "n_items")

    @admin.display(description="interactions")
    def n_interactions(self, obj):
        return self._stat(obj, "n_interactions", "n_interaction_rows")

    def _metric(self, obj: ModelVersion, key: str) -> str:
        value = (obj.metrics or {}).get(key)
        return f"{value:.3f}" if isinstance(value, (int, float)) else "–"

    @admin.display(description="precision@10")
    def precision_at_10(self, obj):
        return self._metric(obj, "precision_at_10")

    @admin.display(description="NDCG@10")
    def ndcg_at_10(self, obj):
        return self._metric(obj, "ndcg_at_10")

    @admin.display(description="coverage")
    def coverage(self, obj):
        return self._metric(obj, "coverage")

    @admin.display(description="progress")
    def progress(self, obj: ModelVersion):
        if obj.in_flight:
            stage = obj.progress_stage or obj.status
            return progress_bar(
                obj.progress_percent, f"{stage} · {obj.progress_percent:.0f}%"
            )
        return "–"

    @admin.display(description="parameters")
    def params_json(self, obj: ModelVersion):
        text = json.dumps(obj.params or {}, indent=2, sort_keys=True, default=str)
        return format_html('<pre style="max-height:28em;overflow:auto">{}</pre>', text)

    @admin.display(description="error")
    def error_text(self, obj: ModelVersion):
        if not obj.error:
            return "–"
        return format_html(
            '<pre class="rs-error" style="white-space:pre-wrap">{}</pre>',
            obj.error[-4000:],
        )

    # --- pages ---

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "charts": model_version_charts(versions=model_versions_for_charts()),
            "in_flight": ModelVersion.objects.filter(
                status__in=ModelVersion.IN_FLIGHT
            ).first(),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        version = self.get_object(request, object_id)
        if version is not None:
            context.update(
                charts=model_version_charts(
                    versions=model_versions_for_charts(), highlight_pk=version.pk
                ),
                stage_chart=model_version_stage_chart(version=version),
                metrics_rows=key_values(version.metrics),
                stats_rows=key_values(version.data_stats),
                timing_rows=key_values(
                    {
                        k: v
                        for k, v in (version.timings or {}).items()
                        if not isinstance(v, dict)
                    },
                    first=(*STAGE_ORDER, "total"),
                ),
                show_save=False,
                show_save_and_continue=False,
                show_save_and_add_another=False,
                show_delete=False,
                in_flight=version.in_flight,
                serving=_serving_problem(version),
                can_activate=version.status
                in (ModelVersion.Status.READY, ModelVersion.Status.REJECTED)
                and self.has_change_permission(request, version),
                progress_url=reverse(
                    "admin:recommendations_modelversion_progress", args=[version.pk]
                ),
            )
        return super().change_view(request, object_id, form_url, context)

    def train_view(self, request):
        """GET: confirm; POST: request a training (single flight) and follow it."""
        from recommendations.services.maintenance import model_version_request

        if not self.has_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            version, created = model_version_request(
                trigger=ModelVersion.Trigger.ADMIN, force=True
            )
            if version is None:
                self.message_user(request, TRAIN_SKIPPED, messages.INFO)
                return HttpResponseRedirect(
                    reverse("admin:recommendations_modelversion_changelist")
                )
            version.refresh_from_db()
            if created:
                self.message_user(
                    request, TRAIN_QUEUED.format(id=version.pk), messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    TRAIN_ALREADY.format(id=version.pk, status=version.status),
                    messages.INFO,
                )
            return HttpResponseRedirect(
                reverse("admin:recommendations_modelversion_change", args=[version.pk])
            )
        return TemplateResponse(
            request,
            "admin/recommendations/modelversion/train.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Train a new model now",
                "in_flight": ModelVersion.objects.filter(
                    status__in=ModelVersion.IN_FLIGHT
                ).first(),
                "active": ModelVersion.objects.filter(
                    status=ModelVersion.Status.ACTIVE
                ).first(),
            },
        )

    def activate_view(self, request, pk: int):
        """POST: make this version the active one (roll back to an older one, too)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        self._activate(request, version)
        return HttpResponseRedirect(
            reverse("admin:recommendations_modelversion_change", args=[pk])
        )

    def progress_view(self, request, pk: int):
        """JSON for the auto-refreshing progress bar."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(
            ModelVersion.objects.only(
                "id",
                "status",
                "progress_stage",
                "progress_percent",
                "heartbeat_at",
                "error",
            ),
            pk=pk,
        )
        return JsonResponse(
            {
                "id": version.pk,
                "status": version.status,
                "stage": version.progress_stage,
                "percent": round(version.progress_percent or 0.0, 1),
                "in_flight": version.in_flight,
                "heartbeat_at": version.heartbeat_at.isoformat()
                if version.heartbeat_at
                else None,
                "error": version.error[:500],
                "now": timezone.now().isoformat(),
            }
        )

    def _activate(self, request, version: ModelVersion) -> None:
        from recommendations.services.registry import (
            ModelVersionError,
            model_version_activate,
        )

        try:
            model_version_activate(version=version)
        except ModelVersionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, ACTIVATED.format(id=version.pk), messages.SUCCESS)

    @admin.action(
        description="Activate the selected version (or roll back to it)",
        permissions=["change"],
    )
    def activate_selected(self, request, queryset):
        versions = list(queryset[:2])
        if len(versions) != 1:
            self.message_user(request, SELECT_ONE, messages.WARNING)
            return
        self._activate(request, versions[0])


def _serving_problem(version: ModelVersion) -> dict | None:
    """Serving's health when this (active) version fails to load in this process."""
    if version.status != ModelVersion.Status.ACTIVE:
        return None
    from recsite.admin_dashboard import serving_health

    health = serving_health()
    return health if health.get("status") in {"fallback", "error"} else None


@admin.register(BusinessRule)
class BusinessRuleAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "action_badge",
        "target",
        "target_object",
        "position",
        "factor",
        "window",
        "state",
        "updated_at",
    )
    list_filter = ("action", "target", "is_active")
    list_select_related = ("item", "category", "tag")
    search_fields = (
        "name",
        "item__title",
        "item__external_id",
        "category__name",
        "tag__name",
    )
    autocomplete_fields = ("item", "category", "tag")
    ordering = ("-id",)
    list_per_page = 50
    change_form_template = "admin/recommendations/businessrule/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "action", "is_active")}),
        (
            "Target",
            {
                "fields": ("target", "item", "category", "tag"),
                "description": (
                    "Choose the target kind, then exactly one item, category or tag."
                ),
            },
        ),
        ("Effect", {"fields": ("position", "factor")}),
        (
            "When",
            {"fields": ("starts_at", "ends_at"), "description": "Blank = no limit."},
        ),
    )

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name=f"{prefix}_preview",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="action", ordering="action")
    def action_badge(self, obj: BusinessRule):
        return badge(obj.action)

    @admin.display(description="applies to")
    def target_object(self, obj: BusinessRule):
        target = obj.item or obj.category or obj.tag
        return str(target) if target is not None else "–"

    @admin.display(description="window")
    def window(self, obj: BusinessRule) -> str:
        if not obj.starts_at and not obj.ends_at:
            return "always"
        start = (
            timezone.localtime(obj.starts_at).strftime("%Y-%m-%d %H:%M")
            if obj.starts_at
            else "…"
        )
        end = (
            timezone.localtime(obj.ends_at).strftime("%Y-%m-%d %H:%M")
            if obj.ends_at
            else "…"
        )
        return f"{start} → {end}"

    @admin.display(description="state")
    def state(self, obj: BusinessRule):
        now = timezone.now()
        if not obj.is_active:
            return badge("off", "expired")
        if obj.starts_at and obj.starts_at > now:
            return badge("scheduled")
        if obj.ends_at and obj.ends_at <= now:
            return badge("expired")
        return badge("live")

    def save_model(self, request, obj, form, change):
        from recommendations.services.rules import business_rule_save

        business_rule_save(rule=obj)

    def delete_model(self, request, obj):
        from recommendations.services.rules import business_rule_delete

        business_rule_delete(rule=obj)

    def delete_queryset(self, request, queryset):
        from recommendations.services.rules import business_rule_delete

        for rule in queryset:
            business_rule_delete(rule=rule)

    def render_change_form(
        self, request, context, add=False, change=False, form_url="", obj=None
    ):
        context["preview_url"] = reverse("admin:recommendations_businessrule_preview")
        context["preview_rule_pk"] = obj.pk if obj is not None else ""
        return super().render_change_form(request, context, add, change, form_url, obj)

    def preview_view(self, request):
        """POST the add/change form here: before/after recommendations for sample users.

        Nothing is saved. `?fragment=1` returns only the panel (the page's Preview
        button fetches it); otherwise a full page (the same button without JavaScript).
        """
        from recommendations.admin_forms import RulePreviewUsersForm
        from recommendations.admin_selectors import rule_preview

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        rule_pk = request.POST.get("_preview_rule_pk") or None
        instance = get_object_or_404(BusinessRule, pk=rule_pk) if rule_pk else None
        if not (
            self.has_change_permission(request, instance)
            if instance
            else self.has_add_permission(request)
        ):
            raise PermissionDenied
        ModelForm = self.get_form(request, instance, change=instance is not None)
        form = ModelForm(request.POST, instance=instance)
        users_form = RulePreviewUsersForm(request.POST)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Rule preview",
            "form": form,
            "users_form": users_form,
        }
        if form.is_valid() and users_form.is_valid():
            rule = form.save(commit=False)
            try:
                context["preview"] = rule_preview(
                    rule=rule,
                    user_external_ids=users_form.cleaned_data["preview_users"],
                )
            except ValidationError as exc:
                context["preview_error"] = "; ".join(exc.messages)
        template = (
            "admin/recommendations/businessrule/_preview.html"
            if request.GET.get("fragment")
            else "admin/recommendations/businessrule/preview.html"
        )
        return TemplateResponse(request, template, context)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "format",
        "original_name",
        "status_badge",
        "progress",
        "accepted",
        "rejected",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind")
    ordering = ("-id",)
    list_per_page = 50
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    exclude = ("file",)

    def has_add_permission(self, request):
        return False  # imports are started through the API or `manage.py import_file`

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ImportJob):
        return badge(obj.status)

    @admin.display(description="progress")
    def progress(self, obj: ImportJob):
        if obj.status == ImportJob.Status.DONE:
            return "100%"
        if not obj.bytes_total:
            return "–"
        percent = 100.0 * obj.bytes_done / obj.bytes_total
        return progress_bar(percent, f"{percent:.0f}% · {obj.rows_done:,} rows")
