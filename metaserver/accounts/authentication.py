"""DRF authentication with API tokens: `Authorization: Token vxh_...` (or `Bearer`)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from metaserver.accounts.access import user_for_api_token
from metaserver.accounts.models import User

_SCHEMES = (b"token", b"bearer")


class ApiTokenAuthentication(BaseAuthentication):
    """Authenticates scripts by an `ApiToken`; other schemes go to the next class."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in _SCHEMES:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "expected 'Authorization: Token <token>'"
            )
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        user = user_for_api_token(token)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid token")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
