"""Reads for bulk import jobs."""

from __future__ import annotations

from django.db.models import QuerySet

from recommendations.models import ImportJob


def import_job_list() -> QuerySet[ImportJob]:
    """All import jobs, newest first (the list leaves out the stored rejections)."""
    return ImportJob.objects.order_by("-id").defer("errors")


def import_job_detail() -> QuerySet[ImportJob]:
    """Import jobs with everything, for one job's page."""
    return ImportJob.objects.all()
