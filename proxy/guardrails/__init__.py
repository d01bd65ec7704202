"""Guardrails on the query (never the documents): the registry of built-in types and how config builds them.

Config (LiteLLM's shape):

    guardrails:
      - guardrail_name: pii
        litellm_params: {guardrail: pii_mask, mode: pre_call, default_on: true, on_flagged: mask}

`guardrail` picks the type from `TYPES`; `mode` must be `pre_call`; `default_on` runs it on every call;
`on_error` (allow | block, default block) decides what a guardrail that fails does. The remaining
`litellm_params` are the type's own options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from .chain import Configured, GuardrailChain, GuardrailUnavailableError
from .contract import ALLOW, Decision, GuardContext, Guardrail
from .custom import build_custom
from .keywords import BannedKeywords
from .length import MaxLength
from .patterns import RegexGuardrail
from .pii import PiiMask
from .webhook import WebhookGuardrail

__all__ = [
    "ALLOW", "TYPES", "Configured", "Decision", "GuardContext", "Guardrail", "GuardrailChain",
    "GuardrailUnavailableError", "build_chain", "build_guardrail", "check_entry",
]

Factory = Callable[[str, dict[str, Any], "httpx.AsyncClient | None"], Guardrail]

TYPES: dict[str, Factory] = {
    "pii_mask": lambda name, options, http: PiiMask(**options),
    "banned_keywords": lambda name, options, http: BannedKeywords(**options),
    "regex": lambda name, options, http: RegexGuardrail(**options),
    "max_length": lambda name, options, http: MaxLength(**options),
    "webhook": lambda name, options, http: WebhookGuardrail(name=name, http=http, **options),
    "custom": lambda name, options, http: build_custom(**options),
}

_COMMON = {"guardrail", "mode", "default_on", "on_error"}


def build_guardrail(name: str, params: Mapping[str, Any], http: httpx.AsyncClient | None = None) -> Configured:
    """One configured guardrail from its `litellm_params`; ValueError naming what is wrong."""
    kind = params.get("guardrail")
    if kind not in TYPES:
        raise ValueError(f"unknown guardrail type {kind!r}; known: {', '.join(TYPES)}")
    mode = params.get("mode", "pre_call")
    if mode not in ("pre_call", ["pre_call"]):
        raise ValueError("mode must be pre_call (guardrails check the query before the call)")
    default_on = params.get("default_on", False)
    if not isinstance(default_on, bool):
        raise ValueError("default_on must be true or false")
    on_error = params.get("on_error", "block")
    if on_error not in ("allow", "block"):
        raise ValueError("on_error must be 'allow' (fail open) or 'block' (fail closed)")
    options = {k: v for k, v in params.items() if k not in _COMMON}
    try:
        guardrail = TYPES[kind](name, options, http)
    except TypeError as exc:
        raise ValueError(f"invalid options for guardrail type {kind!r}: {exc}") from None
    return Configured(name=name, type=kind, guardrail=guardrail, default_on=default_on,
                      fail_open=on_error == "allow")


def check_entry(params: Mapping[str, Any]) -> None:
    """Validate a config entry without starting anything (for `--check` and config load)."""
    build_guardrail("check", params)


def build_chain(entries: Iterable[Any], http: httpx.AsyncClient | None = None) -> GuardrailChain:
    """The chain for `settings.config.guardrails` (GuardrailEntry items), in config order."""
    return GuardrailChain([build_guardrail(e.guardrail_name, e.litellm_params, http) for e in entries])
