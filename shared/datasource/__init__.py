"""The datasource-properties.json model: the one place that knows every JSON spelling.

`parse_datasource` / `parse_datasource_json` / `load_datasource` accept what
WEBKNOSSOS and webknossos-libs write, including legacy shapes (`wkwResolutions`, a
plain `scale` list, bigint-wrapped segment ids), validate it and raise one
`DatasourceError` that lists every problem with its JSON path. The schema classes are
frozen and hashable; unknown keys survive in `extra`. `dump_datasource` writes
unchanged values in their source spelling, so a round trip never rewrites the shape of
a user's file, and `parse_datasource(dump_datasource(p)) == p`.
"""

from shared.datasource._dump import dump_datasource, dump_layer
from shared.datasource._io import (
    MAX_FILE_BYTES,
    dumps_datasource,
    load_datasource,
    parse_datasource_json,
    save_datasource,
)
from shared.datasource._model import (
    LENGTH_UNITS,
    Category,
    DataFormat,
    DatasourceError,
    DatasourceProperties,
    ElementClass,
    JsonForm,
    LayerProperties,
    MagProperties,
    VoxelSize,
)
from shared.datasource._parse import layer_from_json, parse_datasource

__all__ = [
    "LENGTH_UNITS",
    "MAX_FILE_BYTES",
    "Category",
    "DataFormat",
    "DatasourceError",
    "DatasourceProperties",
    "ElementClass",
    "JsonForm",
    "LayerProperties",
    "MagProperties",
    "VoxelSize",
    "dump_datasource",
    "dump_layer",
    "dumps_datasource",
    "layer_from_json",
    "load_datasource",
    "parse_datasource",
    "parse_datasource_json",
    "save_datasource",
]
