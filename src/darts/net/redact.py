"""Make URLs safe to print.

Logs and error messages name the URL a request went to, because "which object failed"
is the first thing a user needs. URLs can carry secrets, though: user:password in the
authority, and pre-signed S3 or OAuth URLs put signatures and tokens in the query string.
Every URL that reaches a log line or an exception message goes through `redact_url`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameter names whose values are credentials or signatures (AWS SigV4
# pre-signed URLs, OAuth tokens, API keys). Matched case-insensitively as substrings.
_SECRET_PARAM = re.compile(
    r"signature|token|credential|secret|password|passwd|api[-_]?key|access[-_]?key|auth",
    re.IGNORECASE,
)
_REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """Return `url` with userinfo and secret-looking query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not a URL we can parse; printing it verbatim could leak whatever it is.
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, _REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="/:"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
