"""The admin UI's sign-in: a signed, expiring session cookie and the CSRF token derived from it.

Stateless on purpose, so every worker and replica accepts the same cookie: `expires.nonce.key_id.binding.
signature`, HMAC-SHA256 with a key derived from the master key (rotating the master key signs everyone out).
A session signed in with an admin key (not the master key) names the key's `key_id` and carries a binding,
an HMAC of the key's current digest (never the digest itself): each page re-reads the key, and a key that was
deleted, blocked, rotated or lost its admin role ends the session (`web.py`). No secret leaves the sign-in
form: not in the cookie, a URL or a log. Signing out clears the cookie and revokes its nonce in this
process; another process would accept a stolen cookie until it expires (`SESSION_SECONDS`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COOKIE = "rerank_proxy_ui"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires: int
    csrf: str
    key_id: str = ""
    """The admin key signed in with; "" for the master key."""
    binding: str = ""
    """HMAC of that key's digest at sign-in: a rotated key no longer matches."""
    caller: Any = None
    """Who acts in this session (set per page by `web.signed_in`): the audit log names it."""


class Sessions:
    def __init__(self, master_key: str, clock: Callable[[], float] = time.time):
        self._key = hmac.new(master_key.encode(), b"rerank-proxy ui session", hashlib.sha256).digest()
        self._clock = clock
        self._revoked: dict[str, int] = {}

    def issue(self, key_id: str = "", digest: str = "") -> tuple[str, Session]:
        """A new session and its cookie value; `key_id` and `digest` name the admin key it was opened with."""
        expires = int(self._clock()) + SESSION_SECONDS
        nonce = secrets.token_urlsafe(16)
        binding = self.binding(digest) if key_id else ""
        payload = f"{expires}.{nonce}.{key_id}.{binding}"
        session = Session(nonce, expires, self._csrf(nonce), key_id, binding)
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged, expired or signed out."""
        if not cookie or cookie.count(".") != 4:
            return None
        expires_text, nonce, key_id, binding, signature = cookie.split(".")
        payload = f"{expires_text}.{nonce}.{key_id}.{binding}"
        if not hmac.compare_digest(signature, self._sign(payload)) or not expires_text.isdigit():
            return None
        expires = int(expires_text)
        if expires <= self._clock() or nonce in self._revoked:
            return None
        return Session(nonce, expires, self._csrf(nonce), key_id, binding)

    def revoke(self, session: Session) -> None:
        now = self._clock()
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}  # forget what expired anyway
        self._revoked[session.nonce] = session.expires

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token or "", session.csrf)

    def binding(self, digest: str) -> str:
        """What ties a session to one secret of its key (the digest itself never goes in a cookie)."""
        return hmac.new(self._key, b"key." + digest.encode(), hashlib.sha256).hexdigest()[:32]

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def _csrf(self, nonce: str) -> str:
        return hmac.new(self._key, b"csrf." + nonce.encode(), hashlib.sha256).hexdigest()[:32]
