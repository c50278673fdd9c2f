"""The token the browser appends to datastore URLs (thumbnails, later the viewer)."""

from __future__ import annotations

from django.http import HttpRequest


def viewer_token_for(request: HttpRequest) -> str:
    """A short-lived token for the logged-in user's reads on datastores.

    Empty for now, so the browser asks anonymously and sees public datasets only;
    short-lived viewer tokens (`metaserver.accounts.viewer_tokens`) replace it.
    """
    return ""
