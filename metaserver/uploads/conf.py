"""Upload limits: environment variables read once, overridable in Django settings
(tests set `settings.VOXELHUB_UPLOAD_QUOTA_BYTES` and the like)."""

from __future__ import annotations

from typing import Final

from django.conf import settings

from shared.env import env_float, env_int

_QUOTA: Final = env_int("VOXELHUB_UPLOAD_QUOTA_BYTES", 2**40, minimum=0)
_EXPIRY_HOURS: Final = env_float("VOXELHUB_UPLOAD_EXPIRY_HOURS", 24.0, minimum=0.01)
_MAX_FILES: Final = env_int("VOXELHUB_UPLOAD_MAX_FILES", 1000, minimum=1)


def quota_bytes() -> int:
    """Bytes an organization may have in uploads (see `actions.quota_used`)."""
    return int(getattr(settings, "VOXELHUB_UPLOAD_QUOTA_BYTES", _QUOTA))


def expiry_hours() -> float:
    """How long a reservation (and its upload token) lives."""
    return float(getattr(settings, "VOXELHUB_UPLOAD_EXPIRY_HOURS", _EXPIRY_HOURS))


def max_files() -> int:
    """Files per upload; bigger folders go as a zip archive."""
    return int(getattr(settings, "VOXELHUB_UPLOAD_MAX_FILES", _MAX_FILES))
