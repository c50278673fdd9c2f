"""The datastore's side of conversions: dramatiq actors that run the planner and
the tasks of `shared.conversions` on the node's queue, and the reporter interface
through which progress reaches the metaserver's jobs."""

from datastore.convert.actors import (
    TIME_LIMIT_ENV,
    ConversionActors,
    ConversionReporter,
    LoggingReporter,
    cancel_conversion,
    conversion_id,
    declare_conversion_actors,
    options_from_json,
)

__all__ = [
    "TIME_LIMIT_ENV",
    "ConversionActors",
    "ConversionReporter",
    "LoggingReporter",
    "cancel_conversion",
    "conversion_id",
    "declare_conversion_actors",
    "options_from_json",
]
