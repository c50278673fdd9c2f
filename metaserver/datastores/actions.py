"""Changes to datastores. Each owns its transaction."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from metaserver.accounts.models import hash_secret
from metaserver.datastores.models import DataStore, DatastoreNonce
from shared.protocol import MAX_CLOCK_SKEW_SECONDS

logger = logging.getLogger(__name__)

# Shorter keys could be guessed; the generated ones have 43 characters.
MIN_KEY_LENGTH = 32
# A request is fresh within +-MAX_CLOCK_SKEW_SECONDS of its timestamp, so its first
# use and a replay are at most twice that apart: older nonces cannot match again.
NONCE_RETENTION = timedelta(seconds=2 * MAX_CLOCK_SKEW_SECONDS)


def _checked_key(key: str | None) -> str:
    if key is None:
        return secrets.token_urlsafe(32)
    if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
        raise ValidationError(
            f"a datastore key needs at least {MIN_KEY_LENGTH} characters "
            "and no whitespace"
        )
    return key


def do_create_datastore(
    name: str,
    url: str,
    *,
    public_url: str | None = None,
    allows_upload: bool = True,
    key: str | None = None,
) -> tuple[DataStore, str]:
    """Create a datastore; returns it and its key (generated when `key` is None).

    The key is stored hashed: the returned plaintext is the only copy.
    """
    plain_key = _checked_key(key)
    datastore = DataStore(
        name=name,
        url=url.rstrip("/"),
        public_url=(public_url or "").rstrip("/"),
        allows_upload=allows_upload,
        key_hash=hash_secret(plain_key),
    )
    datastore.full_clean()
    with transaction.atomic():
        datastore.save()
    logger.info("created datastore %s at %s", name, datastore.url)
    return datastore, plain_key


def do_rotate_datastore_key(datastore: DataStore, key: str | None = None) -> str:
    """Replace the datastore's key; the old one stops working at once."""
    plain_key = _checked_key(key)
    datastore.key_hash = hash_secret(plain_key)
    with transaction.atomic():
        datastore.save(update_fields=["key_hash"])
    logger.info("rotated the key of datastore %s", datastore.name)
    return plain_key


def do_update_datastore(
    datastore: DataStore,
    *,
    url: str | None = None,
    public_url: str | None = None,
    allows_upload: bool | None = None,
) -> DataStore:
    """Change where a datastore is reached and whether it takes uploads."""
    if url is not None:
        datastore.url = url.rstrip("/")
    if public_url is not None:
        datastore.public_url = public_url.rstrip("/")
    if allows_upload is not None:
        datastore.allows_upload = allows_upload
    datastore.full_clean()
    with transaction.atomic():
        datastore.save(update_fields=["url", "public_url", "allows_upload"])
    return datastore


def do_register_datastore(
    datastore: DataStore,
    url: str,
    public_url: str | None,
    allows_upload: bool,
    *,
    version: str = "",
) -> str:
    """A datastore (re)starts: record where it is; returns a fresh metaserver token.

    The token is what the metaserver presents when it calls this datastore; every
    registration rotates it, so a restarted node never trusts an old one.
    """
    token = secrets.token_urlsafe(32)
    datastore.url = url.rstrip("/")
    datastore.public_url = (public_url or "").rstrip("/")
    datastore.allows_upload = allows_upload
    datastore.version = version[:64]
    datastore.metaserver_token = token
    datastore.last_heartbeat = timezone.now()
    datastore.full_clean()
    with transaction.atomic():
        datastore.save(
            update_fields=[
                "url",
                "public_url",
                "allows_upload",
                "version",
                "metaserver_token",
                "last_heartbeat",
            ]
        )
    logger.info("datastore %s registered from %s", datastore.name, datastore.url)
    return token


def do_record_heartbeat(datastore: DataStore) -> None:
    """The datastore is alive now; nonces too old to matter are pruned meanwhile."""
    now = timezone.now()
    # One UPDATE: atomic by itself, no transaction block needed.
    DataStore.objects.filter(pk=datastore.pk).update(last_heartbeat=now)
    datastore.last_heartbeat = now
    # Of every datastore, so a removed node's last nonces go too; one DELETE.
    DatastoreNonce.objects.filter(seen_at__lt=now - NONCE_RETENTION).delete()


def do_use_nonce(datastore: DataStore, nonce: str) -> bool:
    """Record `nonce` as used by `datastore`; False if it was used before (a replay).

    One INSERT (in a savepoint, so a duplicate does not break a surrounding
    transaction); the unique constraint decides, so concurrent replays lose too.
    """
    try:
        with transaction.atomic():
            DatastoreNonce.objects.create(datastore=datastore, nonce=nonce)
    except IntegrityError:
        return False
    return True


def do_delete_datastore(datastore: DataStore) -> None:
    """Delete a datastore that no dataset refers to; ValidationError otherwise."""
    with transaction.atomic():
        count = datastore.datasets.count()
        if count:
            raise ValidationError(
                f"datastore {datastore.name} still serves {count} dataset(s)"
            )
        datastore.delete()
    logger.info("deleted datastore %s", datastore.name)
