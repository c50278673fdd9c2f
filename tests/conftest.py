"""Settings for the whole suite, applied before any test module is imported."""

from __future__ import annotations

import os

# The official webknossos library asks PyPI for its latest version on import; tests
# make no calls beyond loopback.
os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
