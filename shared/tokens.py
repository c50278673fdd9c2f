"""Signed requests between the services: HMAC-SHA256 with a timestamp and a nonce.

A datastore signs every call after registration with the secret both sides hold
(the `metaserver_token` it received at registration). The signature covers

    f"{timestamp}\\n{nonce}\\n{METHOD}\\n{path_with_query}\\n{sha256hex(body)}"

so a captured request cannot be altered (method, path, query and body are covered),
is refused once its timestamp is more than `MAX_CLOCK_SKEW_SECONDS` away from the
receiver's clock, and cannot be replayed within that window because the receiver
accepts each nonce only once (that bookkeeping is the receiver's, not this module's).
`path_with_query` is the path relative to the service's root, as in
`shared.protocol`, plus `?query` if there is one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from typing import Final

from shared.protocol import (
    MAX_CLOCK_SKEW_SECONDS,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)

_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
# secrets.token_urlsafe(16) gives 22 characters; other senders may use more.
_NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SIGNATURE: Final = re.compile(r"[0-9a-f]{64}")


def signed_string(
    timestamp: int, nonce: str, method: str, path_with_query: str, body: bytes
) -> str:
    """The exact text the signature is computed over."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{timestamp}\n{nonce}\n{method.upper()}\n{path_with_query}\n{digest}"


def _signature(
    secret: str,
    timestamp: int,
    nonce: str,
    method: str,
    path_with_query: str,
    body: bytes,
) -> str:
    message = signed_string(timestamp, nonce, method, path_with_query, body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_request(
    secret: str,
    method: str,
    path_with_query: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one request; `body` must be exactly the bytes sent.

    A fresh nonce and the current time are used unless given (tests give them).
    """
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    if timestamp is None:
        timestamp = int(time.time())
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
    if timestamp < 0 or not _NONCE.fullmatch(nonce):
        raise ValueError("timestamp must be >= 0 and nonce 16-64 URL-safe characters")
    return {
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: _signature(
            secret, timestamp, nonce, method, path_with_query, body
        ),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # Plain dicts are case-sensitive; HTTP header names are not.
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def verify_request(
    secret: str,
    method: str,
    path_with_query: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    max_skew: int = MAX_CLOCK_SKEW_SECONDS,
) -> str | None:
    """None if `headers` sign this request with `secret` and a fresh timestamp.

    Otherwise a short reason for the receiver's log (never for the response): a
    missing header, a malformed one, a timestamp too far from `now`, or a wrong
    signature. It never contains the secret or the signature. Checking that the
    nonce was not seen before is up to the caller.
    """
    timestamp = _header(headers, TIMESTAMP_HEADER)
    nonce = _header(headers, NONCE_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp or not nonce or not signature:
        absent = [
            name
            for name, value in (
                (TIMESTAMP_HEADER, timestamp),
                (NONCE_HEADER, nonce),
                (SIGNATURE_HEADER, signature),
            )
            if not value
        ]
        return "missing header " + ", ".join(absent)
    if not _TIMESTAMP.fullmatch(timestamp):
        return f"malformed {TIMESTAMP_HEADER}"
    if not _NONCE.fullmatch(nonce):
        return f"malformed {NONCE_HEADER}"
    if not _SIGNATURE.fullmatch(signature):
        return f"malformed {SIGNATURE_HEADER}"
    if not secret:
        return "no shared secret (not registered)"
    skew = now - int(timestamp)
    if abs(skew) > max_skew:
        return f"timestamp {skew:+.0f} s away from now (at most {max_skew} s allowed)"
    expected = _signature(secret, int(timestamp), nonce, method, path_with_query, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "signature does not match"
    return None
