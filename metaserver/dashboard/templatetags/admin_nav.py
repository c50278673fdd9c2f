"""The admin section's navigation, for the admin pages and the datastores page."""

from __future__ import annotations

from typing import Any

from django import template

from metaserver.accounts.access import (
    user_can_administrate_organization,
    user_is_any_admin,
)

register = template.Library()


@register.inclusion_tag("dashboard/admin/_nav.html", takes_context=True)
def admin_nav(context: template.Context, current: str) -> dict[str, Any]:
    """Teams, Users and Datastores, each shown to those who may open it.

    Views of the admin section pass `admin_flags`; elsewhere they are worked out
    here (one role query).
    """
    flags = context.get("admin_flags")
    if flags is None:
        user = context["request"].user
        organization = context.get("organization")
        administrates = organization is not None and (
            user_can_administrate_organization(user, organization)
        )
        flags = {
            "teams": administrates,
            "users": administrates or bool(context.get("can_manage_datasets")),
            "datastores": bool(context.get("can_see_datastores"))
            or user_is_any_admin(user),
        }
    return {"flags": flags, "current": current}
