"""One JSON error format for the whole API: `{"error": <short text>, "detail": ...}`.

DRF exceptions go through `api_exception_handler`; requests that never reach a DRF
view (unknown routes, crashes, suspicious requests) through the `handler*` views,
which answer JSON under `/api/` and HTML pages elsewhere (the dashboard's
`400.html`, `403.html`, `404.html` and `500.html` templates).
Bodies are parsed by `BoundedJSONParser`, which caps their size and depth so that
garbage gives a 400/413 and never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

# Short texts by DRF error code; the specific message goes into "detail".
_SHORT_TEXT = {
    "invalid": "invalid input",
    "parse_error": "malformed request body",
    "not_authenticated": "authentication required",
    "authentication_failed": "authentication failed",
    "permission_denied": "permission denied",
    "not_found": "not found",
    "method_not_allowed": "method not allowed",
    "not_acceptable": "not acceptable",
    "unsupported_media_type": "unsupported media type",
    "throttled": "too many requests",
    "payload_too_large": "request body too large",
    "conflict": "conflict",
}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class BareError(exceptions.APIException):
    """An error rendered without any detail (for failed datastore keys)."""

    bare = True


def error_body(error: str, detail: Any = None) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped into `{"error", "detail"}`; None lets Django 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    # Imported here: rest_framework.views reads the parser setting, which names
    # this module, so importing it at the top would be circular.
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    error = _SHORT_TEXT.get(str(code), str(code).replace("_", " "))
    if getattr(exc, "bare", False):
        detail: Any = None
    elif isinstance(exc.detail, (list, dict)):
        detail = exc.detail
    else:
        detail = str(exc.detail)
    response.data = error_body(error, detail)
    return response


def _find_nul(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path
            found = _find_nul(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


class BoundedJSONParser(BaseParser):
    """JSON with a size cap (`view.max_body_bytes` or VOXELHUB_MAX_BODY_BYTES).

    Also rejects what PostgreSQL cannot store or Python cannot parse safely: NUL
    characters in strings, NaN/Infinity, and nesting deep enough to recurse out.
    """

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        context = parser_context or {}
        view = context.get("view")
        limit = int(
            getattr(view, "max_body_bytes", None) or settings.VOXELHUB_MAX_BODY_BYTES
        )
        request = context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"at most {limit} bytes are accepted")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"at most {limit} bytes are accepted")
        encoding = context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            # str.encode refuses bytes-to-bytes codecs such as bz2_codec.
            "".encode(encoding)
            text = raw.decode(encoding)
        except (LookupError, UnicodeError) as e:
            raise exceptions.ParseError(f"body is not valid {encoding}: {e}") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise exceptions.ParseError("JSON nested too deeply") from None
        except ValueError as e:
            raise exceptions.ParseError(f"invalid JSON: {e}") from None
        if b"\\u0000" in raw:
            where = _find_nul(data, "")
            if where is not None:
                raise exceptions.ParseError(
                    f"NUL characters are not allowed (at {where or 'top level'})"
                )
        return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _json_or(
    default: Callable[..., HttpResponse],
    status_code: int,
    error: str,
) -> Callable[..., HttpResponse]:
    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if _is_api(request):
            return JsonResponse(error_body(error), status=status_code)
        if exception is None:
            return default(request)
        return default(request, exception)

    return view


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON 404 naming the path for unknown routes under /api/."""
    if _is_api(request):
        return JsonResponse(
            error_body("not found", f"no API route for {request.path}"), status=404
        )
    return defaults.page_not_found(request, exception or Http404())


bad_request = _json_or(defaults.bad_request, 400, "bad request")
permission_denied = _json_or(defaults.permission_denied, 403, "permission denied")
server_error = _json_or(defaults.server_error, 500, "internal server error")
