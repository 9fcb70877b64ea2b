"""Small building blocks shared by the apps' admin modules (badges, JSON editing)."""

import json

from django import forms
from django.db import models
from django.utils.html import format_html


def badge(text: str, kind: str | None = None):
    """A coloured pill (`rs-badge-<kind>` in recsite-admin.css)."""
    return format_html(
        '<span class="rs-badge rs-badge-{}">{}</span>', kind or text, text
    )


class PrettyJSONField(forms.JSONField):
    """A JSON form field that shows the value indented, so staff can edit it by hand."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        try:
            return json.dumps(
                value, ensure_ascii=False, indent=2, sort_keys=True, cls=self.encoder
            )
        except TypeError:
            return super().prepare_value(value)


JSON_FORMFIELD_OVERRIDES = {
    models.JSONField: {
        "form_class": PrettyJSONField,
        "widget": forms.Textarea(
            attrs={
                "rows": 8,
                "cols": 80,
                "class": "vLargeTextField",
                "spellcheck": "false",
                "style": "font-family: monospace",
            }
        ),
    }
}


def progress_bar(percent: float | None, label: str = ""):
    """An inline progress bar with a label (training, imports)."""
    value = max(0.0, min(100.0, float(percent or 0.0)))
    return format_html(
        '<span class="rs-progress" role="progressbar" aria-valuenow="{}" '
        'aria-valuemin="0" '
        'aria-valuemax="100"><span style="width:{}%"></span></span>'
        '<span class="rs-progress-label">{}</span>',
        f"{value:.0f}",
        f"{value:.1f}",
        label or f"{value:.0f}%",
    )


ACTION_PREVIEW_OBJECTS = 30


def action_form_response(
    modeladmin,
    request,
    queryset,
    *,
    form,
    title: str,
    action: str,
    help: str = "",
    submit_label: str = "Apply",
    datalist=(),
):
    """Render the intermediate page of a bulk action that needs input.

    The page posts back to the changelist with the same action and selection plus
    `apply`; the action then validates the bound form and does its work.
    """
    from django.contrib.admin import helpers
    from django.template.response import TemplateResponse

    select_across = request.POST.get("select_across") == "1"
    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    preview_objects = list(queryset[:ACTION_PREVIEW_OBJECTS])
    return TemplateResponse(
        request,
        "admin/rs_action_form.html",
        {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.model._meta,
            "title": title,
            "help": help,
            "form": form,
            "action": action,
            "select_across": select_across,
            "selected": selected,
            "first_pk": selected[0] if selected else "",
            "count": queryset.count(),
            "preview_objects": preview_objects,
            "submit_label": submit_label,
            "datalist": list(datalist),
        },
    )


def format_value(key: str, value) -> str:
    """A JSON value (metric, statistic, timing) as staff read it."""
    import datetime as dt

    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and key.endswith("timestamp"):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).strftime(
            "%Y-%m-%d %H:%M UTC"
        )
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)[:300]
    return str(value)


def key_values(mapping: dict | None, *, first=()) -> list[tuple[str, str]]:
    """(key, formatted value) rows: the `first` keys in order, then the rest sorted."""
    mapping = mapping or {}
    keys = [k for k in first if k in mapping]
    keys += sorted(k for k in mapping if k not in keys)
    return [(key, format_value(key, mapping[key])) for key in keys]
