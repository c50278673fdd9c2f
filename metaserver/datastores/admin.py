from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from metaserver.datastores.models import DataStore


@admin.register(DataStore)
class DataStoreAdmin(admin.ModelAdmin):
    """Keys are created with `do_create_datastore` (API or CLI), never shown here."""

    list_display = ("name", "url", "public_url", "allows_upload", "last_heartbeat")
    search_fields = ("name", "url")
    fields = ("name", "url", "public_url", "allows_upload", "version", "last_heartbeat")
    readonly_fields = ("version", "last_heartbeat")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
