"""Admin for end-users ("preview as this user") and API keys (raw key shown once)."""

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html

from recsite.admin_widgets import JSON_FORMFIELD_OVERRIDES, badge
from users import services
from users.admin_selectors import end_user_admin_list, end_user_recent_interactions
from users.models import ApiKey, EndUser


@admin.register(EndUser)
class EndUserAdmin(admin.ModelAdmin):
    list_display = ("external_id", "interaction_count", "last_seen_at", "created_at")
    search_fields = ("external_id",)
    search_help_text = "Search by the client's user id."
    ordering = ("-id",)
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = ("created_at", "updated_at")
    fields = ("external_id", "attributes", "created_at", "updated_at")
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    change_form_template = "admin/users/enduser/change_form.html"

    def get_queryset(self, request):
        return end_user_admin_list()

    def get_readonly_fields(self, request, obj=None):
        # The id is the client's key for the user: changing it would orphan their data.
        return (
            ("external_id", *self.readonly_fields)
            if obj is not None
            else self.readonly_fields
        )

    def save_model(self, request, obj, form, change):
        if change:
            services.user_update(user=obj, attributes=obj.attributes)
            return
        created = services.user_create(
            external_id=obj.external_id, attributes=obj.attributes
        )
        obj.pk = created.pk
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False
        obj._state.db = created._state.db

    def delete_model(self, request, obj):
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            services.user_delete(user=user)

    @admin.display(description="interactions", ordering="interaction_count")
    def interaction_count(self, obj: EndUser) -> int:
        return obj.interaction_count

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen_at(self, obj: EndUser):
        return obj.last_seen_at

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from recommendations.admin_forms import RecommendationPreviewForm
        from recommendations.admin_selectors import user_recommendations_preview

        context = dict(extra_context or {})
        user = self.get_object(request, object_id)
        if user is not None:
            form = RecommendationPreviewForm(request.GET or None)
            options = (
                form.cleaned_options()
                if form.is_bound and form.is_valid()
                else form.default_options()
            )
            context.update(
                recent_interactions=end_user_recent_interactions(user=user),
                preview_form=form,
                preview=user_recommendations_preview(
                    user_external_id=user.external_id, **options
                ),
            )
        return super().change_view(request, object_id, form_url, context)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "key_prefix",
        "kind",
        "status",
        "last_used_at",
        "created_at",
        "created_by",
    )
    list_filter = ("kind", "is_active")
    list_select_related = ("created_by",)
    search_fields = ("name", "prefix")
    ordering = ("-created_at",)
    actions = ("revoke",)
    list_per_page = 50

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "kind")
        return (
            "name",
            "kind",
            "key_prefix",
            "is_active",
            "last_used_at",
            "created_by",
            "created_at",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("kind", "key_prefix", "last_used_at", "created_by", "created_at")

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, obj: ApiKey):
        return format_html("<code>{}_{}_…</code>", services.KEY_PREFIX, obj.prefix)

    @admin.display(description="status", ordering="is_active")
    def status(self, obj: ApiKey):
        return badge("active") if obj.is_active else badge("revoked")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # New keys go through the service: it generates the secret and stores its hash.
        created, raw_key = services.api_key_create(
            name=obj.name, kind=obj.kind, created_by=request.user
        )
        obj.pk = created.pk
        obj.prefix = created.prefix
        obj.hashed_key = created.hashed_key
        obj.created_by = created.created_by
        obj.created_at = created.created_at
        obj.updated_at = created.updated_at
        obj._state.adding = False
        obj._state.db = created._state.db
        obj._raw_key = raw_key  # only on this in-memory object, for response_add

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(obj, "_raw_key", None)
        if raw_key is None or "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        # Rendered straight from the POST (no redirect, no message storage): the raw key
        # never reaches the session, a cookie or the database, and is never shown again.
        response = TemplateResponse(
            request,
            "admin/users/apikey/created.html",
            {
                **self.admin_site.each_context(request),
                "title": "API key created",
                "opts": self.opts,
                "api_key": obj,
                "raw_key": raw_key,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for api_key in queryset.filter(is_active=True):
            services.api_key_revoke(api_key=api_key)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)
