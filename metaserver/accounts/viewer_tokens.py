"""Short-lived viewer tokens: a logged-in dashboard user's reads on datastores.

The browser cannot send its session cookie to a datastore on another origin, so
the dashboard asks for a `vxt_` token (signed by the metaserver's SECRET_KEY with
a timestamp) and appends it to data requests. It reads what its user reads and
nothing more, expires after `VIEWER_TOKEN_MAX_AGE_SECONDS`, and dies at once when
the user changes their password or is deactivated (the signature covers the
session hash).
"""

from __future__ import annotations

from django.core import signing

from metaserver.accounts.models import User

VIEWER_TOKEN_PREFIX = "vxt_"  # noqa: S105 (a prefix, not a secret)
VIEWER_TOKEN_MAX_AGE_SECONDS = 15 * 60
_SALT = "voxelhub.viewer-token"
_MAX_CHARS = 400


def make_viewer_token(user: User) -> str:
    """A token for `user`'s reads, valid for `VIEWER_TOKEN_MAX_AGE_SECONDS`."""
    payload = {"u": user.pk, "h": user.get_session_auth_hash()[:20]}
    return VIEWER_TOKEN_PREFIX + signing.dumps(payload, salt=_SALT, compress=True)


def user_for_viewer_token(token: str) -> User | None:
    """The active user `token` was made for, or None (bad, expired, outdated)."""
    if not token.startswith(VIEWER_TOKEN_PREFIX) or len(token) > _MAX_CHARS:
        return None
    try:
        payload = signing.loads(
            token.removeprefix(VIEWER_TOKEN_PREFIX),
            salt=_SALT,
            max_age=VIEWER_TOKEN_MAX_AGE_SECONDS,
        )
    except signing.BadSignature:  # SignatureExpired is a subclass
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    user = User.objects.filter(pk=payload["u"], is_active=True).first()
    if user is None or user.get_session_auth_hash()[:20] != payload.get("h"):
        return None
    return user
