"""The wire contract between datastores and the metaserver.

Both services import these names so the two sides cannot drift apart.

Datastore -> metaserver (all JSON, all carry `DATASTORE_KEY_HEADER`; never a query
string). `{name}` is the datastore's name. Every call but `register` is also signed
with the `metaserver_token` of the last registration (`shared.tokens`): the headers
`TIMESTAMP_HEADER`, `NONCE_HEADER` and `SIGNATURE_HEADER`, an HMAC-SHA256 over the
timestamp, nonce, method, path with query (relative to the metaserver's root) and
body. A timestamp more than `MAX_CLOCK_SKEW_SECONDS` away from the metaserver's clock,
or a nonce seen before, is refused.

- `POST /api/datastores/{name}/register`
  body `{"url": str, "public_url": str, "allows_upload": bool, "version": str}`
  -> 200 `{"name": str, "metaserver_token": str}`. `metaserver_token` is a fresh
  random secret the metaserver sends back in `METASERVER_TOKEN_HEADER` when it calls
  this datastore; every registration rotates it.
- `POST /api/datastores/{name}/heartbeat` body `{}` -> 200 `{"ok": true}`
- `POST /api/datastores/{name}/datasets` body `{"datasets": [DatasetReport, ...]}`
  is the complete list of datasets this datastore found on disk in one scan.
  -> 200 `{"created": int, "updated": int, "unusable": int, "ignored": [str]}`.
  Datasets of this datastore that are missing from the list become `unusable` with
  the reason "not found on disk" (never deleted). Unknown organizations are ignored
  and named in `ignored` as "org/name".
  DatasetReport = `{"organization": str, "name": str, "status": "active" |
  "needs_review" | "unusable", "reason": str, "datasource": dict | null}`.
  For `needs_review`, `datasource` holds the properties inferred from the folders.
- `POST /api/datastores/{name}/validate-access`
  body `{"token": str | null, "organization": str, "dataset": str | null,
  "mode": "read" | "write" | "administrate"}`
  -> 200 `{"allowed": bool, "cache_seconds": int}`. `dataset` null with mode
  `administrate` asks whether the token may administrate the organization's datasets
  on this datastore (for example trigger an inbox scan).

Errors from the metaserver are JSON `{"error": str, "detail": ...}`; a wrong or
missing key or signature, a stale timestamp or a replayed nonce gives 401 (missing)
or 403 (wrong) without details. After a 401/403 to a signed call a datastore
registers again (its token may have been rotated) and retries once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

DATASTORE_KEY_HEADER: Final = "X-Voxelhub-Datastore-Key"
METASERVER_TOKEN_HEADER: Final = "X-Voxelhub-Metaserver-Token"  # noqa: S105 (a header name)
USER_TOKEN_HEADER: Final = "X-Auth-Token"  # noqa: S105 (a header name)
MISSING_BUCKETS_HEADER: Final = "MISSING-BUCKETS"
TIMESTAMP_HEADER: Final = "X-Voxelhub-Timestamp"
NONCE_HEADER: Final = "X-Voxelhub-Nonce"
SIGNATURE_HEADER: Final = "X-Voxelhub-Signature"
SIGNATURE_HEADERS: Final = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

# Signed requests are accepted this far from the receiver's clock (both ways); the
# receiver remembers nonces for twice as long. Clocks need NTP.
MAX_CLOCK_SKEW_SECONDS: Final = 60

REGISTER_PATH: Final = "/api/datastores/{name}/register"
HEARTBEAT_PATH: Final = "/api/datastores/{name}/heartbeat"
REPORT_PATH: Final = "/api/datastores/{name}/datasets"
VALIDATE_ACCESS_PATH: Final = "/api/datastores/{name}/validate-access"

# A "yes" from validate-access is cached at most this long by a datastore; this is
# the documented delay after which a revoked token stops working everywhere.
MAX_ACCESS_CACHE_SECONDS: Final = 10


class DatasetStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REVIEW = "needs_review"
    UNUSABLE = "unusable"
    CONVERTING = "converting"


class AccessMode(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMINISTRATE = "administrate"


# Square thumbnail sizes (pixels) the dashboard shows: table rows and the details
# sidebar. Conversion workers render these ahead of the first request.
THUMBNAIL_SIZES: Final = (64, 256)

# Technical dataset, organization and layer names: safe as one path segment.
NAME_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
