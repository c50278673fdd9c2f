"""Authentication of datastore nodes, for the datastore-only endpoints.

The key travels only in `DATASTORE_KEY_HEADER`, never in a query string, and must
belong to the datastore named in the URL. Registration needs the key only; every
other call must also be signed (`shared.tokens`) with the `metaserver_token` of the
datastore's last registration, with a fresh timestamp and a nonce not used before.
Failures say nothing about why (the reason goes to the log): a missing key or
signature gives 401; a wrong key, a key of another datastore, an unknown name, a
wrong or stale signature or a replayed nonce 403.
"""

from __future__ import annotations

import hmac
import io
import logging
import time

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from metaserver.accounts.models import hash_secret
from metaserver.api_errors import PayloadTooLarge
from metaserver.datastores.actions import do_use_nonce
from metaserver.datastores.models import DataStore
from shared.protocol import (
    DATASTORE_KEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADERS,
)
from shared.tokens import verify_request

logger = logging.getLogger(__name__)

_META_KEY = "HTTP_" + DATASTORE_KEY_HEADER.upper().replace("-", "_")
# Compared against when the datastore is unknown, so that case takes as long.
_DUMMY_HASH = hash_secret("no such datastore")


class DatastoreKeyMissing(exceptions.NotAuthenticated):
    """No key or no signature: 401 without details."""

    bare = True


class DatastoreKeyRejected(exceptions.PermissionDenied):
    """A wrong key or signature, a stale timestamp, a replay: 403 without details."""

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


class SignedDatastoreAuthentication(DatastoreKeyAuthentication):
    """The key, and a signature with the datastore's `metaserver_token`.

    Queries: the key check's one, then one INSERT of the nonce (in a savepoint).
    """

    def authenticate(self, request: Request) -> tuple[AnonymousUser, DataStore]:
        user, datastore = super().authenticate(request)
        path = request._request.get_full_path_info()
        if not all(request.headers.get(name) for name in SIGNATURE_HEADERS):
            logger.warning(
                "unsigned request of datastore %r to %s", datastore.name, path
            )
            raise DatastoreKeyMissing()
        reason = verify_request(
            datastore.metaserver_token,
            request.method or "",
            path,
            _raw_body(request),
            request.headers,
            now=time.time(),
        )
        nonce = request.headers[NONCE_HEADER]
        if reason is None and not do_use_nonce(datastore, nonce):
            reason = "nonce used before (a replay)"
        if reason is not None:
            logger.warning(
                "refused signed request of datastore %r to %s: %s",
                datastore.name,
                path,
                reason,
            )
            raise DatastoreKeyRejected()
        return user, datastore


def _raw_body(request: Request) -> bytes:
    """The body exactly as sent, under the same cap as `BoundedJSONParser`.

    Read here, before parsing, and handed back to DRF's parsers as the stream:
    Django's `request.body` would refuse bodies over DATA_UPLOAD_MAX_MEMORY_SIZE,
    below the report endpoint's own limit.
    """
    view = (request.parser_context or {}).get("view")
    limit = int(
        getattr(view, "max_body_bytes", None) or settings.VOXELHUB_MAX_BODY_BYTES
    )
    declared = request.META.get("CONTENT_LENGTH") or ""
    # Like DRF: without a positive Content-Length there is no body.
    if not declared.isdigit() or int(declared) == 0:
        return b""
    if int(declared) > limit:
        raise PayloadTooLarge(f"at most {limit} bytes are accepted")
    raw = request._request.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"at most {limit} bytes are accepted")
    request._stream = io.BytesIO(raw)
    return bytes(raw)


class IsDatastore(BasePermission):
    """Only requests authenticated by `DatastoreKeyAuthentication` pass."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, DataStore):
            raise DatastoreKeyMissing()
        return True
