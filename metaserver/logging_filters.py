"""A logging filter that keeps tokens and keys out of every log line."""

from __future__ import annotations

import logging
import re

# API, sharing and viewer tokens by their prefix, and anything passed as
# token=/key=/password= in a query string or a "Token xyz" / "Bearer xyz"
# authorization value.
_PATTERNS = (
    re.compile(r"vx[hst]_[A-Za-z0-9_\-.:]+"),
    re.compile(
        r"(?i)((?:token|key|password|secret|sharingToken)=)[^&\s\"']+",
    ),
    re.compile(r"(?i)\b((?:Token|Bearer)\s+)[A-Za-z0-9_\-.~+/=]+"),
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with every token-looking part replaced by `[redacted]`."""
    text = _PATTERNS[0].sub(REDACTED, text)
    text = _PATTERNS[1].sub(rf"\1{REDACTED}", text)
    return _PATTERNS[2].sub(rf"\1{REDACTED}", text)


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's message so that no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
