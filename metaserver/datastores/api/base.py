"""The base of every datastore-only endpoint: key and signature, nothing else."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.views import APIView

from metaserver.datastores.authentication import (
    DatastoreKeyAuthentication,
    DatastoreKeyMissing,
    IsDatastore,
    SignedDatastoreAuthentication,
)
from metaserver.datastores.models import DataStore


class DatastoreOnlyView(APIView):
    """Only the datastore named in the URL, with its key and a signed, fresh,
    never-seen request, gets past `initial` (registration: the key only).

    User sessions and API tokens are not accepted here, and the key is never read
    from a query string.
    """

    authentication_classes: tuple[type[DatastoreKeyAuthentication], ...] = (
        SignedDatastoreAuthentication,
    )
    permission_classes = (IsDatastore,)

    def datastore(self, request: Request) -> DataStore:
        datastore = request.auth
        if not isinstance(datastore, DataStore):
            raise DatastoreKeyMissing()
        return datastore

    def get_authenticate_header(self, request: Request) -> str:
        return DatastoreKeyAuthentication().authenticate_header(request)
