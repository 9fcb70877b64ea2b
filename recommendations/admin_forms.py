"""Forms of the admin's recommendation pages (preview as a user, rule preview)."""

from django import forms

from items.models import Category, Tag

DEFAULT_PREVIEW_N = 10
MAX_PREVIEW_N = 100
MAX_PREVIEW_USERS = 5


class RecommendationPreviewForm(forms.Form):
    """The filters the recommendations API takes, as GET parameters of a user's page."""

    n = forms.IntegerField(
        min_value=1,
        max_value=MAX_PREVIEW_N,
        required=False,
        initial=DEFAULT_PREVIEW_N,
        widget=forms.NumberInput(attrs={"style": "width: 5em"}),
    )
    category = forms.ModelChoiceField(
        queryset=Category.objects.order_by("name"),
        required=False,
        to_field_name="name",
        empty_label="any",
    )
    tag = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"size": 12, "list": "rs-tags"})
    )
    exclude = forms.CharField(
        required=False,
        help_text="Item ids, comma-separated.",
        widget=forms.TextInput(
            attrs={"size": 20, "placeholder": "item ids, comma-separated"}
        ),
    )
    include_seen = forms.BooleanField(required=False, label="include seen")
    max_per_category = forms.IntegerField(
        min_value=1,
        max_value=MAX_PREVIEW_N,
        required=False,
        label="max per category",
        widget=forms.NumberInput(attrs={"style": "width: 5em"}),
    )

    def clean_tag(self) -> str | None:
        name = self.cleaned_data.get("tag", "").strip()
        if name and not Tag.objects.filter(name=name).exists():
            raise forms.ValidationError(f"No tag named {name!r}.")
        return name or None

    def clean_exclude(self) -> list[str]:
        return [
            part.strip()
            for part in self.cleaned_data.get("exclude", "").split(",")
            if part.strip()
        ]

    def cleaned_options(self) -> dict:
        """Keyword arguments for serving's recommend_for_user."""
        data = self.cleaned_data
        return {
            "n": data.get("n") or DEFAULT_PREVIEW_N,
            "category": data["category"].name if data.get("category") else None,
            "tag": data.get("tag") or None,
            "exclude": data.get("exclude") or [],
            "include_seen": bool(data.get("include_seen")),
            "max_per_category": data.get("max_per_category"),
        }

    @staticmethod
    def default_options() -> dict:
        """What the page shows before any filter is chosen."""
        return {
            "n": DEFAULT_PREVIEW_N,
            "category": None,
            "tag": None,
            "exclude": [],
            "include_seen": False,
            "max_per_category": None,
        }


class RulePreviewUsersForm(forms.Form):
    """Which users a rule preview shows (blank: a few recently active ones)."""

    preview_users = forms.CharField(
        required=False,
        label="Preview for users",
        help_text=(
            f"Up to {MAX_PREVIEW_USERS} user ids, comma-separated; "
            "blank = recently active users."
        ),
    )

    def clean_preview_users(self) -> list[str]:
        ids = [
            part.strip()
            for part in self.cleaned_data.get("preview_users", "").split(",")
            if part.strip()
        ]
        if len(ids) > MAX_PREVIEW_USERS:
            raise forms.ValidationError(f"At most {MAX_PREVIEW_USERS} users.")
        return ids
