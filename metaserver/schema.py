"""OpenAPI descriptions of our authentication schemes (drf-spectacular extensions).

Imported by the URL configuration so the extensions exist before a schema is built.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from shared.protocol import (
    DATASTORE_KEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "metaserver.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token vxh_...` (`Bearer vxh_...` works too)",
        }


class DatastoreKeyScheme(OpenApiAuthenticationExtension):
    target_class = "metaserver.datastores.authentication.DatastoreKeyAuthentication"
    name = "datastoreKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": DATASTORE_KEY_HEADER}


class SignedDatastoreScheme(OpenApiAuthenticationExtension):
    """The key and the three signature headers, all required (`shared.tokens`)."""

    target_class = "metaserver.datastores.authentication.SignedDatastoreAuthentication"
    # Named apart from DatastoreKeyScheme's: one name, one definition.
    name = [
        "signedDatastoreKey",
        "datastoreTimestamp",
        "datastoreNonce",
        "datastoreSignature",
    ]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        signed = "part of the HMAC-SHA256 request signature, see shared/tokens.py"
        return [
            {"type": "apiKey", "in": "header", "name": DATASTORE_KEY_HEADER},
            {
                "type": "apiKey",
                "in": "header",
                "name": TIMESTAMP_HEADER,
                "description": f"unix seconds; {signed}",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": NONCE_HEADER,
                "description": f"used once; {signed}",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": SIGNATURE_HEADER,
                "description": f"hex; {signed}",
            },
        ]
