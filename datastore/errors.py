"""Errors that carry their HTTP status, and the one middleware that renders them.

Handlers raise; they never build error responses themselves. Every error leaves
the datastore as JSON `{"error": str, "detail": ...}`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)


class DatastoreError(Exception):
    """Base class: `status` is the HTTP status, `error` the message for the caller."""

    status: ClassVar[int] = 500

    def __init__(self, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail}


class BadRequest(DatastoreError):
    status = 400


class Unauthorized(DatastoreError):
    status = 401


class Forbidden(DatastoreError):
    status = 403


class NotFound(DatastoreError):
    status = 404


class Conflict(DatastoreError):
    status = 409


class PayloadTooLarge(DatastoreError):
    status = 413


class ServiceUnavailable(DatastoreError):
    status = 503


class DataCorrupt(DatastoreError):
    """Stored data cannot be decoded: our problem, not the caller's."""

    status = 500


def error_response(status: int, error: str, detail: Any = None) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def _from_http_exception(exc: web.HTTPException) -> web.StreamResponse:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        response = error_response(
            405,
            "method not allowed",
            {"method": exc.method, "allowed": sorted(exc.allowed_methods)},
        )
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    if isinstance(exc, web.HTTPNotFound):
        return error_response(404, "not found")
    # aiohttp raises others itself too, e.g. 413 for a body above client_max_size.
    return error_response(exc.status, exc.reason.lower())


@web.middleware
async def error_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Turn every exception of a handler into a JSON error response."""
    try:
        return await handler(request)
    except DatastoreError as e:
        return error_response(e.status, e.error, e.detail)
    except web.HTTPException as e:
        if e.status < 400:
            raise  # redirects and the like are not errors
        return _from_http_exception(e)
    except Exception:
        # Details stay in the log; the caller gets no traceback.
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal server error")
