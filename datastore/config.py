"""Settings of a datastore node, read once from the environment at start."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.env import (
    SettingError,
    env_bool,
    env_float,
    env_int,
    env_path,
    env_paths,
    env_str,
)
from shared.protocol import MAX_ACCESS_CACHE_SECONDS, NAME_PATTERN

_BIND = re.compile(r"^\s*(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)\s*$")


def _default_read_threads() -> int:
    return 2 * (os.cpu_count() or 1)


def _bind_from_url(name: str, url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(f"{name} must be an http(s) URL, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise SettingError(f"{name}: invalid port in {url!r}") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port


def _parse_bind(name: str, value: str) -> tuple[str, int]:
    match = _BIND.match(value)
    if not match:
        raise SettingError(f"{name} must be host:port, got {value!r}")
    host = match.group("v6") or match.group("host") or "0.0.0.0"  # noqa: S104 (explicit ':port' means all interfaces)
    port = int(match.group("port"))
    if not 0 <= port <= 65535:
        raise SettingError(f"{name}: port must be 0..65535, got {port}")
    return host, port


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class DatastoreSettings:
    """Everything a datastore node needs; build with `from_env` or directly in tests.

    `key` and `broker_url` (which may hold a password) never appear in the repr.
    """

    key: str = field(repr=False)
    binary_data: Path
    name: str = "localhost"
    url: str = "http://127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    metaserver_url: str = "http://127.0.0.1:8000"
    bind_host: str = "127.0.0.1"
    bind_port: int = 8080
    allowed_roots: tuple[Path, ...] = ()
    scan_interval: float = 60.0
    heartbeat_interval: float = 10.0
    max_request_voxels: int = 512**3
    access_cache_seconds: float = 10.0
    allows_upload: bool = True
    read_threads: int = field(default_factory=_default_read_threads)
    broker_url: str = field(default="", repr=False)
    # Uploads (datastore/upload.py): unfinished ones older than this are removed.
    upload_expiry_hours: float = 24.0
    upload_max_unpacked_bytes: int = 2**40
    upload_max_compression_ratio: float = 100.0

    def __post_init__(self) -> None:
        if not re.match(NAME_PATTERN, self.name):
            raise SettingError(
                f"VOXELHUB_DATASTORE_NAME must match {NAME_PATTERN}, got {self.name!r}"
            )
        if not self.key:
            raise SettingError("VOXELHUB_DATASTORE_KEY must be set")
        if self.access_cache_seconds > MAX_ACCESS_CACHE_SECONDS:
            # Revocation must reach every node within the documented delay.
            object.__setattr__(self, "access_cache_seconds", MAX_ACCESS_CACHE_SECONDS)

    @property
    def queue_name(self) -> str:
        """The dramatiq queue of this node's workers."""
        return f"datastore.{self.name}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DatastoreSettings:
        """Read `VOXELHUB_DATASTORE_*` and `VOXELHUB_BROKER_URL`; junk fails loudly."""
        url = _http_url(
            "VOXELHUB_DATASTORE_URL",
            env_str("VOXELHUB_DATASTORE_URL", "http://127.0.0.1:8080", environ=environ),
        )
        bind = env_str("VOXELHUB_DATASTORE_BIND", "", environ=environ)
        if bind:
            host, port = _parse_bind("VOXELHUB_DATASTORE_BIND", bind)
        else:
            host, port = _bind_from_url("VOXELHUB_DATASTORE_URL", url)
        public_url = _http_url(
            "VOXELHUB_DATASTORE_PUBLIC_URL",
            env_str("VOXELHUB_DATASTORE_PUBLIC_URL", url, environ=environ),
        )
        return cls(
            name=env_str("VOXELHUB_DATASTORE_NAME", "localhost", environ=environ),
            url=url,
            public_url=public_url,
            bind_host=host,
            bind_port=port,
            key=env_str("VOXELHUB_DATASTORE_KEY", required=True, environ=environ),
            binary_data=env_path(
                "VOXELHUB_DATASTORE_BINARY_DATA", "./data/binaryData", environ=environ
            ),
            metaserver_url=_http_url(
                "VOXELHUB_DATASTORE_METASERVER_URL",
                env_str(
                    "VOXELHUB_DATASTORE_METASERVER_URL",
                    "http://127.0.0.1:8000",
                    environ=environ,
                ),
            ),
            allowed_roots=tuple(
                env_paths("VOXELHUB_DATASTORE_ALLOWED_ROOTS", environ=environ)
            ),
            scan_interval=env_float(
                "VOXELHUB_DATASTORE_SCAN_INTERVAL", 60.0, minimum=1.0, environ=environ
            ),
            heartbeat_interval=env_float(
                "VOXELHUB_DATASTORE_HEARTBEAT_INTERVAL",
                10.0,
                minimum=0.5,
                environ=environ,
            ),
            max_request_voxels=env_int(
                "VOXELHUB_DATASTORE_MAX_REQUEST_VOXELS",
                512**3,
                minimum=1,
                environ=environ,
            ),
            access_cache_seconds=min(
                env_float(
                    "VOXELHUB_DATASTORE_ACCESS_CACHE_SECONDS",
                    10.0,
                    minimum=0.0,
                    environ=environ,
                ),
                float(MAX_ACCESS_CACHE_SECONDS),
            ),
            allows_upload=env_bool(
                "VOXELHUB_DATASTORE_ALLOWS_UPLOAD", True, environ=environ
            ),
            read_threads=env_int(
                "VOXELHUB_DATASTORE_READ_THREADS",
                _default_read_threads(),
                minimum=1,
                environ=environ,
            ),
            broker_url=env_str("VOXELHUB_BROKER_URL", "", environ=environ),
            upload_expiry_hours=env_float(
                "VOXELHUB_UPLOAD_EXPIRY_HOURS", 24.0, minimum=0.01, environ=environ
            ),
            upload_max_unpacked_bytes=env_int(
                "VOXELHUB_UPLOAD_MAX_UNPACKED_BYTES", 2**40, minimum=1, environ=environ
            ),
            upload_max_compression_ratio=env_float(
                "VOXELHUB_UPLOAD_MAX_COMPRESSION_RATIO",
                100.0,
                minimum=1.0,
                environ=environ,
            ),
        )
