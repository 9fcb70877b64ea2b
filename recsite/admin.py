"""recsite's AdminSite: Django's admin with a dashboard as its index page.

Installed as `recsite.admin.RecsiteAdminConfig` in place of `django.contrib.admin`, so
`django.contrib.admin.site` *is* this site and every app (django-celery-beat included)
registers on it as usual. No model imports at module level: this module is loaded while
the app registry is being populated.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class RecsiteAdminSite(admin.AdminSite):
    """The admin with a dashboard index (see recsite/admin_dashboard.py)."""

    site_header = "recsite administration"
    site_title = "recsite admin"
    index_title = "Dashboard"
    index_template = "admin/recsite_index.html"

    def index(self, request, extra_context=None):
        """The usual app list, preceded by the dashboard's figures and charts."""
        from recsite.admin_dashboard import dashboard_context

        context = {**dashboard_context(), **(extra_context or {})}
        return super().index(request, context)


class RecsiteAdminConfig(AdminConfig):
    """`django.contrib.admin` whose default site is RecsiteAdminSite."""

    default_site = "recsite.admin.RecsiteAdminSite"
