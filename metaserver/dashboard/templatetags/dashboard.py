"""Template filters of the dashboard."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from metaserver.datasets.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown(text: str | None) -> SafeString:
    """A dataset description as HTML, sanitized by `render_markdown`.

    The one place the dashboard marks HTML safe: nh3's allow-list has already
    removed scripts, event handlers and unsafe links.
    """
    return mark_safe(render_markdown(text or ""))  # noqa: S308 (sanitized above)
