from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from metaserver.accounts.actions import do_create_team
from metaserver.accounts.models import (
    ApiToken,
    Membership,
    Organization,
    Team,
    TeamMembership,
    User,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("organization",)


@admin.register(User)
class VoxelhubUserAdmin(UserAdmin):
    inlines = (MembershipInline,)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "created")
    search_fields = ("name", "display_name")


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "created")
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")
    readonly_fields = ("group",)

    def save_model(
        self, request: HttpRequest, obj: Team, form: Any, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new team needs its group: created by the action, as everywhere else.
        team = do_create_team(obj.organization, obj.name)
        obj.pk, obj.group, obj.created = team.pk, team.group, team.created


@admin.register(TeamMembership)
class TeamMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "team", "is_manager")
    list_select_related = ("user", "team")
    autocomplete_fields = ("user", "team")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by their users (shown once); here they can only be revoked."""

    list_display = ("prefix", "name", "user", "created", "last_used")
    list_select_related = ("user",)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = ("user", "name", "prefix", "created", "last_used")
    exclude = ("key_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
