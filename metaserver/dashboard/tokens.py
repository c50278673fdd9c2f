"""The token the browser appends to datastore URLs (thumbnails, later the viewer)."""

from __future__ import annotations

import time

from django.http import HttpRequest

from metaserver.accounts.access import is_logged_in
from metaserver.accounts.viewer_tokens import make_viewer_token

SESSION_KEY = "dashboard_viewer_token"
# Renewed well before it expires (VIEWER_TOKEN_MAX_AGE_SECONDS, 15 minutes), so a
# page loaded just before renewal still has minutes left for its thumbnails.
RENEW_AFTER_SECONDS = 10 * 60


def viewer_token_for(request: HttpRequest) -> str:
    """A short-lived viewer token for the logged-in user's reads on datastores.

    Kept in the session and renewed when older than `RENEW_AFTER_SECONDS`, so pages
    do not sign a new one on every request. Empty for anonymous visitors: their
    browser asks anonymously and sees public datasets only.
    """
    user = request.user
    if not is_logged_in(user):
        return ""
    now = time.time()
    cached = request.session.get(SESSION_KEY)
    if (
        isinstance(cached, dict)
        and cached.get("user") == user.pk
        and isinstance(cached.get("token"), str)
        and isinstance(cached.get("issued"), int | float)
        and 0 <= now - cached["issued"] < RENEW_AFTER_SECONDS
    ):
        return str(cached["token"])
    token = make_viewer_token(user)
    request.session[SESSION_KEY] = {"user": user.pk, "token": token, "issued": now}
    return token
