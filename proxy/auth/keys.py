"""Generate, hash and compare keys. A plain key exists only in the response that created it."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    """SHA-256 hex digest: what the database stores and looks up."""
    return hashlib.sha256(key.encode()).hexdigest()


def same_key(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def display_name(key: str) -> str:
    """`sk-...abcd`: enough to recognise a key in a list, useless to an attacker."""
    return f"{key[:3]}...{key[-4:]}"


def looks_like_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
