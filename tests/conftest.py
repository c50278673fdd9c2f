"""Settings for the whole suite, applied before any test module is imported."""

from __future__ import annotations

import os

# The official webknossos library asks PyPI for its latest version on import; tests
# make no calls beyond loopback.
os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")


def pytest_collection_modifyitems(items: list) -> None:  # type: ignore[type-arg]
    """Browser tests run last.

    Playwright's sync API keeps an asyncio loop running in the main thread until
    the session ends; the datastore's async tests cannot start their own after it.
    """
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))
