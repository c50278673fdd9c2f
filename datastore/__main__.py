"""`python -m datastore`: serve a node configured by `VOXELHUB_*` variables."""

from __future__ import annotations

import logging
import sys

from datastore.config import DatastoreSettings
from datastore.serve import run
from shared.env import SettingError


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = DatastoreSettings.from_env()
    except SettingError as e:
        logging.getLogger("datastore").error("configuration error: %s", e)
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
