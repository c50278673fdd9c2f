from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from metaserver.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """For looking; jobs are created by the code that starts the work."""

    list_display = (
        "id",
        "kind",
        "organization",
        "owner",
        "state",
        "progress",
        "created",
    )
    list_filter = ("state", "kind")
    list_select_related = ("organization", "owner")
    search_fields = ("message", "owner__username", "organization__name")
    readonly_fields = ("created",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
