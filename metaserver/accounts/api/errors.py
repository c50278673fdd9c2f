"""The errors of account actions as API errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions

from metaserver.accounts.actions import (
    AlreadyExists,
    LastAdminError,
    TeamManagersLocked,
)
from metaserver.api_errors import Conflict


@contextmanager
def action_errors(field: str | None = None) -> Iterator[None]:
    """Taken names and last admins give 409, locked team managers 403, other
    refusals 400 (under `field` when the message is about one field)."""
    try:
        yield
    except (AlreadyExists, LastAdminError) as e:
        raise Conflict("; ".join(e.messages)) from None
    except TeamManagersLocked as e:
        raise exceptions.PermissionDenied("; ".join(e.messages)) from None
    except DjangoValidationError as e:
        if hasattr(e, "error_dict"):
            raise exceptions.ValidationError(e.message_dict) from None
        detail = {field: e.messages} if field else e.messages
        raise exceptions.ValidationError(detail) from None
