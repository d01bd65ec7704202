"""Upstream text made safe to repeat: our secrets cut out, control characters escaped, length capped.

A provider's error body is written by someone else: it may echo the credentials we sent (`Bearer <our key>`),
carry newlines that would forge lines in our log, or run to megabytes. Every piece of upstream text that
reaches a caller's error message or a log line goes through `safe_text` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_TEXT = 300
"""Characters of upstream text kept in an error message."""
REDACTED = "[redacted]"
_MIN_SECRET = 6  # shorter values are too likely to be ordinary words
_SECRET_NAME = re.compile(r"key|secret|token|credential|password|auth|signature", re.IGNORECASE)
_SCHEME = re.compile(r"\b(Bearer|Basic|AWS4-HMAC-SHA256)\s+[^\s\"',;]{8,}", re.IGNORECASE)  # not "Basic plan"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def secrets_of(deployment: Any, headers: dict[str, str] | None = None) -> list[str]:
    """The credential values a deployment sends: its api_key, secret-named params and headers, and the
    request's auth header values (with and without their scheme word)."""
    values: list[Any] = [deployment.api_key]
    values += [v for k, v in deployment.params.items() if _SECRET_NAME.search(k)]
    for source in (deployment.headers, headers or {}):
        for name, value in source.items():
            if _SECRET_NAME.search(name):
                values += [value, *str(value).split()[1:]]
    return [v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET]


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\u{ord(char):04x}")


def safe_text(text: str, secrets: Iterable[str] = (), limit: int = MAX_TEXT) -> str:
    """`text` without any of `secrets` (nor any `Bearer ...`-style credential), on one line, at most `limit`
    characters (plus an ellipsis)."""
    secrets = sorted(set(secrets), key=len, reverse=True)
    cut = limit + 1 + max(map(len, secrets), default=64) * 2  # a secret that starts before `limit` is whole
    head = text[:cut]
    for secret in secrets:
        head = head.replace(secret, REDACTED)
    head = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", head)
    head = _CONTROL.sub(_escape, head)
    return head[:limit] + "..." if len(head) > limit or len(text) > cut else head
