"""Admin for the catalog: items (filters, bulk actions, similar items), labels."""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from items.admin_selectors import (
    ITEM_CHART_DAYS,
    category_admin_list,
    item_admin_list,
    item_availability_q,
    item_has_interactions,
    item_interaction_summary,
    item_interactions_per_day,
    tag_admin_list,
)
from items.models import Category, Item, Tag
from recsite.admin_charts import bar_chart
from recsite.admin_widgets import JSON_FORMFIELD_OVERRIDES, action_form_response, badge

LABELS_SHOWN = 3
LABEL_FIELDS = ("categories", "tags")


class DropdownRelatedFilter(admin.RelatedFieldListFilter):
    """A related-field filter rendered as a <select>, for long lists (tags)."""

    template = "admin/rs_dropdown_filter.html"


class AvailabilityFilter(admin.SimpleListFilter):
    title = "availability"
    parameter_name = "availability"

    def lookups(self, request, model_admin):
        return (
            ("now", "Available now"),
            ("scheduled", "Scheduled (not yet)"),
            ("expired", "Expired"),
        )

    def queryset(self, request, queryset):
        if self.value() in {"now", "scheduled", "expired"}:
            return queryset.filter(
                item_availability_q(self.value(), now=timezone.now())
            )
        return queryset


class HasInteractionsFilter(admin.SimpleListFilter):
    title = "has interactions"
    parameter_name = "has_interactions"

    def lookups(self, request, model_admin):
        return (("yes", "Yes"), ("no", "No (cold item)"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(item_has_interactions())
        if self.value() == "no":
            return queryset.filter(~item_has_interactions())
        return queryset


class LabelsForm(forms.Form):
    """Names of categories or tags to add to / remove from the selected items."""

    names = forms.CharField(
        label="Names",
        help_text="Comma-separated.",
        widget=forms.TextInput(
            attrs={"list": "rs-datalist", "size": 40, "autofocus": True}
        ),
    )

    def clean_names(self) -> list[str]:
        names = [
            part.strip()
            for part in self.cleaned_data["names"].split(",")
            if part.strip()
        ]
        if not names:
            raise forms.ValidationError("Enter at least one name.")
        return names


class RuleForItemsForm(forms.Form):
    """The parameters of pin/boost/block rules created for the selected items."""

    name = forms.CharField(max_length=200, required=False, help_text="Optional label.")
    position = forms.IntegerField(
        min_value=1,
        initial=1,
        required=False,
        help_text="Pin: 1-based position of the first item (the next ones follow).",
    )
    factor = forms.FloatField(
        min_value=0.0001,
        initial=2.0,
        required=False,
        help_text="Boost: score multiplier.",
    )
    starts_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    ends_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args, action: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.rule_action = action
        if action != "pin":
            del self.fields["position"]
        if action != "boost":
            del self.fields["factor"]
        if action == "pin":
            self.fields["position"].required = True
        if action == "boost":
            self.fields["factor"].required = True

    def clean(self):
        cleaned = super().clean()
        starts, ends = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end must come after the start.")
        return cleaned


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "title",
        "category_list",
        "tag_list",
        "state",
        "interaction_count",
        "updated",
    )
    list_display_links = ("external_id", "title")
    list_filter = (
        "is_hidden",
        AvailabilityFilter,
        HasInteractionsFilter,
        ("categories", DropdownRelatedFilter),
        ("tags", DropdownRelatedFilter),
    )
    search_fields = ("title", "external_id")
    search_help_text = "Search by title or the client's item id."
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False
    autocomplete_fields = ("categories", "tags")
    readonly_fields = ("created_at", "updated_at")
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    change_form_template = "admin/items/item/change_form.html"
    fieldsets = (
        (None, {"fields": ("external_id", "title", "description")}),
        (
            "Catalog",
            {
                "fields": (
                    "categories",
                    "tags",
                    "is_hidden",
                    "available_from",
                    "available_until",
                )
            },
        ),
        (
            "Attributes",
            {
                "fields": ("attributes",),
                "description": "Free-form JSON used as features.",
            },
        ),
        ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )
    actions = (
        "hide",
        "unhide",
        "add_category",
        "remove_category",
        "add_tag",
        "remove_tag",
        "pin",
        "boost",
        "block",
    )

    def get_queryset(self, request):
        return item_admin_list()

    def get_readonly_fields(self, request, obj=None):
        # The id is the client's key for the item: changing it would orphan their data.
        return (
            ("external_id", *self.readonly_fields)
            if obj is not None
            else self.readonly_fields
        )

    def save_model(self, request, obj, form, change):
        from items import services

        labels = {
            name: [label.name for label in form.cleaned_data[name]]
            for name in LABEL_FIELDS
            if name in form.cleaned_data and (name in form.changed_data or not change)
        }
        if change:
            fields = {
                name: getattr(obj, name)
                for name in form.changed_data
                if name not in LABEL_FIELDS
            }
            services.item_update(item=obj, **fields, **labels)
            return
        created = services.item_create(
            external_id=obj.external_id,
            title=obj.title,
            description=obj.description,
            attributes=obj.attributes,
            is_hidden=obj.is_hidden,
            available_from=obj.available_from,
            available_until=obj.available_until,
            **labels,
        )
        # The admin goes on with `obj` (log entry, redirect): make it the created row.
        obj.pk = created.pk
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False
        obj._state.db = created._state.db

    def save_related(self, request, form, formsets, change):
        # Categories and tags were written by the item service in save_model.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        from items import services

        services.item_delete(item=obj)

    def delete_queryset(self, request, queryset):
        from items import services

        for item in queryset:
            services.item_delete(item=item)

    @admin.display(description="categories")
    def category_list(self, obj: Item):
        return _label_list(obj.categories.all())

    @admin.display(description="tags")
    def tag_list(self, obj: Item):
        return _label_list(obj.tags.all())

    @admin.display(description="state", ordering="is_hidden")
    def state(self, obj: Item):
        if obj.is_hidden:
            return badge("hidden")
        now = timezone.now()
        if obj.available_from and obj.available_from > now:
            return badge("scheduled")
        if obj.available_until and obj.available_until <= now:
            return badge("expired")
        return badge("live")

    @admin.display(description="interactions", ordering="interaction_count")
    def interaction_count(self, obj: Item) -> int:
        return obj.interaction_count

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Item) -> str:
        return timezone.localtime(obj.updated_at).strftime("%Y-%m-%d %H:%M")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from recommendations.admin_selectors import item_similar_preview

        context = dict(extra_context or {})
        item = self.get_object(request, object_id)
        if item is not None:
            summary = item_interaction_summary(item=item)
            now = timezone.now()
            latest = summary["latest"]
            # An item quiet for the whole window: chart its last active months instead.
            quiet = latest is not None and latest < now - dt.timedelta(
                days=ITEM_CHART_DAYS
            )
            end = latest if quiet else now
            per_day = item_interactions_per_day(item=item, end=end)
            title = f"Interactions per day (last {ITEM_CHART_DAYS} days)"
            if quiet:
                title = (
                    f"Interactions per day ({ITEM_CHART_DAYS} days to {end:%Y-%m-%d})"
                )
            context.update(
                activity_chart=bar_chart(
                    labels=[day.strftime("%b %d") for day, _ in per_day],
                    values=[count for _, count in per_day],
                    title=title,
                    y_label="interactions",
                    width=860,
                ),
                latest_interaction_at=latest,
                type_counts=summary["by_type"],
                similar=item_similar_preview(item=item),
            )
        return super().change_view(request, object_id, form_url, context)

    # --- bulk actions (entry points: the work is done by items.services / rules) ---

    @admin.action(
        description="Hide selected items (never recommended)", permissions=["change"]
    )
    def hide(self, request, queryset):
        from items import services

        changed = services.item_set_hidden(
            items=list(queryset.values_list("pk", flat=True)), hidden=True
        )
        self.message_user(request, f"Hid {changed} item(s).", messages.SUCCESS)

    @admin.action(description="Unhide selected items", permissions=["change"])
    def unhide(self, request, queryset):
        from items import services

        changed = services.item_set_hidden(
            items=list(queryset.values_list("pk", flat=True)), hidden=False
        )
        self.message_user(request, f"Unhid {changed} item(s).", messages.SUCCESS)

    def _labels_action(self, request, queryset, *, kind: str, add: bool, action: str):
        from items import services

        form = LabelsForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            names = form.cleaned_data["names"]
            key = ("add_" if add else "remove_") + (
                "categories" if kind == "category" else "tags"
            )
            item_ids = list(queryset.values_list("pk", flat=True))
            update = getattr(services, "item_labels_update", None)
            if update is not None:
                changed = update(item_ids=item_ids, **{key: names})
            else:
                changed = _labels_update_each(item_ids, kind=kind, add=add, names=names)
            verb = "Added" if add else "Removed"
            where = "to" if add else "from"
            self.message_user(
                request,
                f"{verb} {kind} {', '.join(names)} {where} {changed} item(s).",
                messages.SUCCESS,
            )
            return None
        model = Category if kind == "category" else Tag
        return action_form_response(
            self,
            request,
            queryset,
            form=form,
            action=action,
            title=f"{'Add' if add else 'Remove'} a {kind}",
            help=(
                f"Missing {'categories' if kind == 'category' else 'tags'} are created."
                if add
                else ""
            ),
            datalist=model.objects.order_by("name").values_list("name", flat=True)[
                :500
            ],
        )

    @admin.action(
        description="Add a category to selected items…", permissions=["change"]
    )
    def add_category(self, request, queryset):
        return self._labels_action(
            request, queryset, kind="category", add=True, action="add_category"
        )

    @admin.action(
        description="Remove a category from selected items…", permissions=["change"]
    )
    def remove_category(self, request, queryset):
        return self._labels_action(
            request, queryset, kind="category", add=False, action="remove_category"
        )

    @admin.action(description="Add a tag to selected items…", permissions=["change"])
    def add_tag(self, request, queryset):
        return self._labels_action(
            request, queryset, kind="tag", add=True, action="add_tag"
        )

    @admin.action(
        description="Remove a tag from selected items…", permissions=["change"]
    )
    def remove_tag(self, request, queryset):
        return self._labels_action(
            request, queryset, kind="tag", add=False, action="remove_tag"
        )

    def _rule_action(self, request, queryset, *, rule_action: str):
        from recommendations.services.rules import business_rule_create

        form = RuleForItemsForm(
            request.POST if "apply" in request.POST else None, action=rule_action
        )
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            items = list(queryset.order_by("pk"))
            for offset, item in enumerate(items):
                business_rule_create(
                    action=rule_action,
                    target="item",
                    item=item,
                    name=data.get("name") or "",
                    position=(data["position"] + offset)
                    if rule_action == "pin"
                    else None,
                    factor=data.get("factor") if rule_action == "boost" else None,
                    starts_at=data.get("starts_at"),
                    ends_at=data.get("ends_at"),
                )
            self.message_user(
                request,
                f"Created {len(items)} {rule_action} rule(s). "
                "They apply to recommendations at once.",
                messages.SUCCESS,
            )
            return None
        helps = {
            "pin": "Pinned items take a fixed position in every list.",
            "boost": "Boosted items have their score multiplied.",
            "block": "Blocked items are never recommended while the rule is active.",
        }
        return action_form_response(
            self,
            request,
            queryset,
            form=form,
            action=rule_action,
            title=f"{rule_action.capitalize()} items",
            help=helps[rule_action],
            submit_label=f"Create {rule_action} rules",
        )

    @admin.action(description="Pin selected items…", permissions=["change"])
    def pin(self, request, queryset):
        return self._rule_action(request, queryset, rule_action="pin")

    @admin.action(description="Boost selected items…", permissions=["change"])
    def boost(self, request, queryset):
        return self._rule_action(request, queryset, rule_action="boost")

    @admin.action(description="Block selected items…", permissions=["change"])
    def block(self, request, queryset):
        return self._rule_action(request, queryset, rule_action="block")


def _labels_update_each(item_ids, *, kind: str, add: bool, names: list[str]) -> int:
    """Stopgap until items.services has a bulk label update (requested): per item."""
    from items import services

    field = "categories" if kind == "category" else "tags"
    changed = 0
    for item in Item.objects.filter(pk__in=item_ids).prefetch_related(field):
        current = [label.name for label in getattr(item, field).all()]
        if add:
            wanted = current + [name for name in names if name not in current]
        else:
            wanted = [name for name in current if name not in names]
        if wanted != current:
            services.item_update(item=item, **{field: wanted})
            changed += 1
    return changed


def _label_list(labels):
    """The first few names, then “+N”."""
    labels = list(labels)
    shown = format_html_join(
        ", ", "{}", ((label.name,) for label in labels[:LABELS_SHOWN])
    )
    if len(labels) > LABELS_SHOWN:
        return format_html(
            '{} <span class="rs-muted">+{}</span>', shown, len(labels) - LABELS_SHOWN
        )
    return shown


class _LabelAdmin(admin.ModelAdmin):
    list_display = ("name", "item_count", "created_at")
    search_fields = ("name",)
    ordering = ("name",)
    list_per_page = 100

    @admin.display(description="items", ordering="item_count")
    def item_count(self, obj):
        return obj.item_count


@admin.register(Category)
class CategoryAdmin(_LabelAdmin):
    def get_queryset(self, request):
        return category_admin_list()


@admin.register(Tag)
class TagAdmin(_LabelAdmin):
    def get_queryset(self, request):
        return tag_admin_list()
