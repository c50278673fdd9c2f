"""Datastore nodes known to the metaserver."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from metaserver.accounts.models import name_validator


def http_url_validator(value: str) -> None:
    """An http(s) URL with a host; single-label hosts (`http://datastore:8080`) welcome.

    Django's URLValidator refuses hosts without a dot, which cluster-internal and
    docker-compose service names are.
    """
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise ValidationError(f"not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in value) or parts.username or parts.password:
        raise ValidationError("must not contain spaces or credentials")
    if port == 0 or parts.query or parts.fragment:
        raise ValidationError("must not have port 0, a query or a fragment")


class DataStore(models.Model):
    """A datastore node serving voxel data, authenticated by its key.

    `url` is how the metaserver reaches the node, `public_url` how browsers and
    scripts do (empty: same as `url`). Only the SHA-256 of the key is stored.
    `metaserver_token` is the secret the metaserver presents when it calls the node;
    the node learns it at registration, which rotates it, so it is kept in clear.
    """

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    url = models.CharField(max_length=500, validators=[http_url_validator])
    public_url = models.CharField(
        max_length=500, blank=True, validators=[http_url_validator]
    )
    key_hash = models.CharField(max_length=64, editable=False)
    allows_upload = models.BooleanField(default=True)
    version = models.CharField(max_length=64, blank=True, editable=False)
    last_heartbeat = models.DateTimeField(null=True, blank=True, editable=False)
    metaserver_token = models.CharField(max_length=128, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("name",)
        verbose_name = "datastore"

    def __str__(self) -> str:
        return self.name

    @property
    def effective_public_url(self) -> str:
        return self.public_url or self.url

    @property
    def is_reachable(self) -> bool:
        """Whether the node sent a heartbeat within VOXELHUB_DATASTORE_STALE_SECONDS."""
        if self.last_heartbeat is None:
            return False
        stale = timedelta(seconds=settings.VOXELHUB_DATASTORE_STALE_SECONDS)
        return timezone.now() - self.last_heartbeat <= stale


class DatastoreNonce(models.Model):
    """A nonce of a signed datastore request, remembered to refuse its replay.

    A nonce is accepted once per datastore; rows older than twice the allowed clock
    skew can no longer match a fresh timestamp and are pruned on heartbeats.
    """

    # Indexed by the unique constraint, which starts with this column.
    datastore = models.ForeignKey(
        DataStore, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("datastore", "nonce"), name="datastore_nonce_once"
            ),
        )

    def __str__(self) -> str:
        return f"{self.datastore_id}:{self.nonce}"
