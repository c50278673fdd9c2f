"""URL patterns for the API: names by the protocol's pattern, trailing slash optional.

Both spellings are accepted so a POST is never redirected (which would drop its
body) and clients need not care about the slash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, re_path

from shared.protocol import NAME_PATTERN

NAME_REGEX = NAME_PATTERN.removeprefix("^").removesuffix("$")
INT_REGEX = "[1-9][0-9]{0,17}"


def api_route(route: str, view: Callable[..., Any], name: str) -> URLPattern:
    """`route` like "datasets/{organization}/{name}/"; each {x} is a technical name,
    each {x:int} a positive integer (an id).

    The spelling given is the canonical one (reverse() and the OpenAPI schema use
    it); the other one is accepted too.
    """
    body = re.sub(
        r"\{(\w+)(:int)?\}",
        lambda m: f"(?P<{m.group(1)}>{INT_REGEX if m.group(2) else NAME_REGEX})",
        route.strip("/"),
    )
    # "/?" reads as "/" and "(?:/)?" as "" to reverse() and drf-spectacular.
    optional_slash = "/?" if route.endswith("/") else "(?:/)?"
    return re_path(rf"^{body}{optional_slash}$", view, name=name)
