"""System checks that turn confusing start-up failures into clear messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_sqlite_directory(**kwargs: Any) -> list[CheckMessage]:
    """A missing SQLite folder otherwise surfaces as a bare "unable to open"."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return []
    name = str(database["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        return []
    folder = Path(name).parent
    if folder.is_dir():
        return []
    return [
        Error(
            f"The folder of the SQLite database does not exist: {folder}",
            hint="Create it, set VOXELHUB_HOME to an existing folder, "
            "or set DATABASE_URL.",
            id="voxelhub.E001",
        )
    ]
