"""`SecretBox`: provider settings encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`).

The key comes from `RERANK_PROXY_SALT_KEY`, else LiteLLM's `LITELLM_SALT_KEY`, else the master key (LiteLLM's
fallback too), stretched to a Fernet key with HKDF-SHA256. Changing it makes stored models unreadable: they
are then skipped with an ERROR naming them, never served with a wrong key.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT_ENV = ("RERANK_PROXY_SALT_KEY", "LITELLM_SALT_KEY")

SECRET_PARAMS = frozenset({
    "api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_web_identity_token",
    "vertex_credentials",
})
"""`litellm_params` never returned by any endpoint (header values are masked too)."""


class SecretBox:
    def __init__(self, secret: str):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"rerank-proxy", info=b"stored-models"
                       ).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], master_key: str | None) -> SecretBox | None:
        for name in SALT_ENV:
            if environ.get(name):
                return cls(environ[name])
        return cls(master_key) if master_key else None

    def seal(self, value: Mapping[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(dict(value))).decode()

    def open(self, token: str) -> dict[str, Any]:
        """The mapping sealed in `token`; ValueError when it was sealed with another key or is damaged."""
        try:
            value = orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, orjson.JSONDecodeError):
            raise ValueError("cannot decrypt: sealed with another salt key, or damaged") from None
        if not isinstance(value, dict):
            raise ValueError("cannot decrypt: not a mapping")
        return value


def public_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`litellm_params` safe to show: secrets left out, header values masked."""
    shown: dict[str, Any] = {}
    for name, value in params.items():
        if name in SECRET_PARAMS:
            continue
        if name in ("headers", "extra_headers") and isinstance(value, Mapping):
            value = {header: "***" for header in value}
        shown[name] = value
    return shown
