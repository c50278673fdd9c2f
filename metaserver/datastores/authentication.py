"""Authentication of datastore nodes by their key, for the datastore-only endpoints.

The key travels only in `DATASTORE_KEY_HEADER`, never in a query string, and must
belong to the datastore named in the URL. Failures say nothing about why: a missing
key gives 401, a wrong key, a key of another datastore or an unknown name 403.
"""

from __future__ import annotations

import hmac
import logging

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from metaserver.accounts.models import hash_secret
from metaserver.datastores.models import DataStore
from shared.protocol import DATASTORE_KEY_HEADER

logger = logging.getLogger(__name__)

_META_KEY = "HTTP_" + DATASTORE_KEY_HEADER.upper().replace("-", "_")
# Compared against when the datastore is unknown, so that case takes as long.
_DUMMY_HASH = hash_secret("no such datastore")


class DatastoreKeyMissing(exceptions.NotAuthenticated):
    bare = True


class DatastoreKeyRejected(exceptions.PermissionDenied):
    bare = True


class DatastoreKeyAuthentication(BaseAuthentication):
    """Sets `request.auth` to the `DataStore` whose key the request carries."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, DataStore]:
        key = request.META.get(_META_KEY, "")
        if not key:
            raise DatastoreKeyMissing()
        kwargs = (request.parser_context or {}).get("kwargs", {})
        name = kwargs.get("name", "")
        datastore = DataStore.objects.filter(name=name).first()
        given = hash_secret(key)
        expected = datastore.key_hash if datastore is not None else _DUMMY_HASH
        if not hmac.compare_digest(given, expected) or datastore is None:
            logger.warning("rejected datastore key for %r", name)
            raise DatastoreKeyRejected()
        return AnonymousUser(), datastore

    def authenticate_header(self, request: Request) -> str:
        return DATASTORE_KEY_HEADER


class IsDatastore(BasePermission):
    """Only requests authenticated by `DatastoreKeyAuthentication` pass."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, DataStore):
            raise DatastoreKeyMissing()
        return True
