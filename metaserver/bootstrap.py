"""First-run setup for the embedded mode (`voxelhub up`) and small CLI helpers.

Call after `django.setup()` and migrations. The credentials file is the only place
the generated secrets exist in clear; the database keeps hashes. Every run checks
the file against the database and regenerates whatever no longer matches, so a
lost or stale file heals itself (at the price of new secrets).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from metaserver.accounts.actions import (
    do_create_api_token,
    do_create_organization,
    do_create_user,
    do_set_password,
    do_set_role,
)
from metaserver.accounts.models import ApiToken, Organization, Role, User, hash_secret
from metaserver.datastores.actions import (
    do_create_datastore,
    do_rotate_datastore_key,
    do_update_datastore,
)
from metaserver.datastores.models import DataStore

logger = logging.getLogger(__name__)

EMBEDDED_TOKEN_NAME = "embedded"  # noqa: S105 (a label, not a secret)


class SetupError(RuntimeError):
    """A setup step that cannot be done, with a message meant for the CLI's user."""


@dataclass(frozen=True)
class EmbeddedSetup:
    admin_username: str
    admin_password: str
    api_token: str
    datastore_name: str
    datastore_key: str
    created: bool


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        logger.warning("ignoring unreadable credentials file %s: %s", path, e)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _write_credentials(path: Path, values: dict[str, str]) -> None:
    """Write atomically with mode 0600: readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o600)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _random_password() -> str:
    return secrets.token_urlsafe(12)


def ensure_embedded_setup(
    *,
    credentials_file: Path,
    organization: str = "sample_organization",
    admin_username: str = "admin",
    datastore_name: str = "localhost",
    datastore_url: str = "http://127.0.0.1:8080",
) -> EmbeddedSetup:
    """Make sure the organization, its admin, an API token and the datastore exist.

    First run: creates them all with random secrets and writes `{admin_password,
    api_token, datastore_key}` to `credentials_file`. Later runs reuse the secrets in
    the file when they still match the database (and update the datastore's url);
    a secret that is missing or stale is replaced (password reset, new token,
    rotated key) and the file rewritten.
    """
    stored = _read_credentials(credentials_file)
    created = False
    try:
        with transaction.atomic():
            org = Organization.objects.filter(name=organization).first()
            if org is None:
                org = do_create_organization(organization)
                created = True
            user = User.objects.filter(username=admin_username).first()
            password = stored.get("admin_password", "")
            if user is None:
                password = _random_password()
                user = do_create_user(
                    admin_username,
                    password,
                    organization=org,
                    role=Role.ADMIN,
                    is_superuser=True,
                )
                created = True
            else:
                do_set_role(user, org, Role.ADMIN)
                if not password or not user.check_password(password):
                    password = _random_password()
                    do_set_password(user, password)
            token = stored.get("api_token", "")
            if (
                not token
                or not ApiToken.objects.filter(
                    user=user, key_hash=hash_secret(token)
                ).exists()
            ):
                token = do_create_api_token(user, EMBEDDED_TOKEN_NAME)
            datastore = DataStore.objects.filter(name=datastore_name).first()
            key = stored.get("datastore_key", "")
            if datastore is None:
                datastore, key = do_create_datastore(datastore_name, datastore_url)
                created = True
            else:
                if datastore.url != datastore_url.rstrip("/"):
                    do_update_datastore(datastore, url=datastore_url)
                if not key or not secrets.compare_digest(
                    hash_secret(key), datastore.key_hash
                ):
                    key = do_rotate_datastore_key(datastore)
            values = {
                "admin_password": password,
                "api_token": token,
                "datastore_key": key,
            }
            if values != stored:
                # Inside the transaction: if the file cannot be written, the
                # database keeps the secrets of the old file.
                _write_credentials(credentials_file, values)
                logger.info("wrote the embedded credentials to %s", credentials_file)
    except ValidationError as e:
        raise SetupError(_describe(e)) from None
    return EmbeddedSetup(
        admin_username=admin_username,
        admin_password=password,
        api_token=token,
        datastore_name=datastore_name,
        datastore_key=key,
        created=created,
    )


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}"
            for field, messages in error.message_dict.items()
        )
    return "; ".join(error.messages)


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise SetupError(f"no user named {username!r}")
    return user


def create_token_for(username: str, name: str = "cli") -> str:
    """A new API token for `username` (plaintext, shown once)."""
    return do_create_api_token(_user(username), name)


def set_password_for(username: str, password: str) -> None:
    """Set `username`'s password; SetupError for an unknown user or a weak password."""
    user = _user(username)
    try:
        do_set_password(user, password)
    except ValidationError as e:
        raise SetupError(_describe(e)) from None
