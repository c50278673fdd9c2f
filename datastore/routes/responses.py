"""Binary answers that never hand the event loop one huge write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from datastore.reading import WireBytes

# Above this, bodies are streamed in pieces of this size, each awaiting drain.
CHUNK_BYTES = 1 << 20


async def binary_response(
    request: web.Request,
    parts: Sequence[WireBytes],
    headers: Mapping[str, str],
    content_type: str = "application/octet-stream",
) -> web.StreamResponse:
    """`parts` concatenated as the body, streamed when large (no join copy)."""
    total = sum(len(p) for p in parts)
    if total <= CHUNK_BYTES:
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        return web.Response(body=body, content_type=content_type, headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_type = content_type
    response.content_length = total
    await response.prepare(request)
    for part in parts:
        view = memoryview(part).cast("B")
        for start in range(0, len(view), CHUNK_BYTES):
            await response.write(view[start : start + CHUNK_BYTES])
    await response.write_eof()
    return response
