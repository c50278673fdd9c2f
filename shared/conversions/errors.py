"""Errors of the conversion engine. Messages are safe to show to the dataset's owner."""

from __future__ import annotations


class ConversionError(Exception):
    """Base class: a conversion cannot go on."""


class ConversionInputError(ConversionError):
    """The input cannot be converted as given (unreadable, inconsistent, unsupported).

    Retrying cannot help, so workers fail the job at once with this message, which
    names the file (relative to the input) and the problem.
    """


class ConversionCancelled(ConversionError):
    """The conversion was cancelled or has failed: its staging folder is gone."""
