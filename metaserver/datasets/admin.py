from __future__ import annotations

from django.contrib import admin

from metaserver.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "organization",
        "datastore",
        "status",
        "is_public",
        "updated",
    )
    list_filter = ("status", "is_public", "is_remote", "datastore")
    list_select_related = ("organization", "datastore")
    search_fields = ("name", "display_name", "organization__name")
    autocomplete_fields = ("organization", "allowed_teams")
    readonly_fields = ("datastore", "created", "updated", "last_used")
