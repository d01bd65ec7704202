"""`custom`: your own guardrail class, named by import path (`custom: mypkg.module:MyGuardrail`).

The class is instantiated once at start with the entry's other `litellm_params` as keyword arguments and
must have `check(query, context)`, sync or async, returning a `Decision` (or a dict with the same fields:
`{"action": "allow" | "block" | "mask", "query": ..., "reason": ...}`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .contract import Decision


def load_class(path: Any) -> type:
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError("custom must be 'package.module:ClassName'")
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, attribute, None)
    if not isinstance(cls, type):
        raise ValueError(f"{module_name!r} has no class {attribute!r}")
    if not callable(getattr(cls, "check", None)):
        raise ValueError(f"{path} has no check(query, context) method")
    return cls


def build_custom(*, custom: str, **options: Any) -> Any:
    cls = load_class(custom)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"cannot create {custom} with {sorted(options) or 'no options'}: {exc}") from None


def as_decision(result: Any) -> Decision:
    """Accept a Decision or a dict of its fields from user code."""
    if isinstance(result, Decision):
        return result
    if isinstance(result, dict):
        entities = result.get("entities") or ()
        return Decision(action=result.get("action", "allow"), query=result.get("query"),
                        reason=str(result.get("reason") or ""), entities=tuple(entities))
    raise TypeError(f"a guardrail returned {type(result).__name__}, not a Decision")
