"""Template tags of the dataset settings: may the viewer open them?"""

from __future__ import annotations

from typing import Any

from django import template

from metaserver.datasets.models import Dataset

register = template.Library()


@register.simple_tag(takes_context=True)
def may_edit_dataset(context: dict[str, Any], dataset: Dataset) -> bool:
    """Whether the request's user may open `dataset`'s settings (the WRITE gate)."""
    from metaserver.dashboard.settings_views import user_may_edit

    request = context.get("request")
    user = getattr(request, "user", None)
    return user is not None and user_may_edit(user, dataset)
