"""Input readers with one interface (`Source`), detected from what is given.

See `detect` for the detection rules and each module for its format's details.
"""

from shared.conversions.sources.base import (
    BaseSource,
    Source,
    SourceHints,
    layer_name_from,
    looks_like_segmentation,
    natural_key,
    natural_sorted,
)
from shared.conversions.sources.detect import (
    SUPPORTED,
    detect_layers,
    detect_source,
    open_source,
    with_spec,
)

__all__ = [
    "SUPPORTED",
    "BaseSource",
    "Source",
    "SourceHints",
    "detect_layers",
    "detect_source",
    "layer_name_from",
    "looks_like_segmentation",
    "natural_key",
    "natural_sorted",
    "open_source",
    "with_spec",
]
