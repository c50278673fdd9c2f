from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from metaserver.uploads.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """For looking; uploads are reserved through the API."""

    list_display = (
        "id",
        "organization",
        "name",
        "user",
        "state",
        "total_size",
        "created",
    )
    list_filter = ("state",)
    list_select_related = ("organization", "user")
    search_fields = ("name", "user__username", "organization__name")
    readonly_fields = ("created", "token_hash")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
