"""Errors of the format layer. Every message is safe to show to the dataset's users.

Messages name paths relative to the dataset folder (`color/1`, `c/0/0/1/0`), never
the server's absolute paths.
"""

from __future__ import annotations


class FormatError(Exception):
    """Base class: data on disk cannot be opened, read or written as asked."""


class PathNotAllowed(FormatError):
    """A layer or mag path leaves the dataset folder and every allowed root."""


class MagNotFound(FormatError):
    """A mag is listed but no data folder or array metadata exists for it."""


class CorruptData(FormatError):
    """A chunk, shard or header on disk cannot be decoded."""


class UnsupportedData(FormatError):
    """A data type, codec, layout or location this server refuses to decode."""
