"""mkdocs hook: the configuration reference, rendered from the settings models at build time.

Keys, types, defaults and limits come from the pydantic models in `proxy/settings.py`, descriptions from their
field docstrings, deployment keys from `DEPLOYMENT_PARAMS`, the provider registry and `proxy/refusals.py`: the
page cannot drift from what the config loader accepts. `docs/configuration.md` holds the marker this replaces.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

MARKER = "<!-- config-reference -->"


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    if annotation is typing.Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "see below" if isinstance(value, BaseModel) else _yaml(value)
    if field.default is PydanticUndefined or field.default is None:
        return "—"
    return _yaml(field.default)


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return f"`{text}`"


def _bounds(field: FieldInfo) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = [f"{sign} {getattr(m, name)}" for m in field.metadata for name, sign in words.items()
             if getattr(m, name, None) is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def model_table(model: type[BaseModel], prefix: str) -> list[str]:
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        lines.append(f"| `{prefix}{name}` | {_cell(_type(field.annotation))} | {_default(field)} | "
                     f"{_cell(field.description)}{_bounds(field)} |")
    return lines


def sections() -> list[tuple[str, type[BaseModel], str]]:
    """(title, model, key prefix) for every table, in page order."""
    from proxy.cache import CacheParams
    from proxy.settings import ConfigFile, GeneralSettings, GuardrailEntry, LitellmSettings, ModelEntry, RouterSettings

    return [
        ("Top level", ConfigFile, ""),
        ("model_list", ModelEntry, "model_list[]."),
        ("general_settings", GeneralSettings, "general_settings."),
        ("router_settings", RouterSettings, "router_settings."),
        ("litellm_settings", LitellmSettings, "litellm_settings."),
        ("litellm_settings.cache_params", CacheParams, "litellm_settings.cache_params."),
        ("guardrails", GuardrailEntry, "guardrails[]."),
    ]


def deployment_params() -> tuple[list[str], dict[str, list[str]]]:
    """The litellm_params keys every deployment takes, and the extra ones per provider."""
    from proxy.providers import REGISTRY
    from proxy.settings import DEPLOYMENT_PARAMS

    own: dict[str, list[str]] = {}
    for provider in {p.name: p for p in REGISTRY.values()}.values():
        for key in sorted({*provider.options, *provider.param_env} - DEPLOYMENT_PARAMS):
            own.setdefault(key, []).append(provider.name)
    return sorted(DEPLOYMENT_PARAMS), own


def render() -> str:
    lines: list[str] = []
    for title, model, prefix in sections():
        lines += [f"## {title}", "", *model_table(model, prefix), ""]
    common, own = deployment_params()
    lines += ["## litellm_params", "",
              "Keys a `model_list[].litellm_params` mapping may hold (any other key is an error naming it). "
              "What they do is described on the [Providers](providers.md) and [Routing](routing.md) pages.", "",
              "Every provider: " + ", ".join(f"`{k}`" for k in common) + ".", ""]
    if own:
        lines += ["| Key | Providers |", "|---|---|"]
        lines += [f"| `{k}` | {', '.join(v)} |" for k, v in sorted(own.items())]
        lines.append("")
    lines += refused()
    return "\n".join(lines)


def refused() -> list[str]:
    """The LiteLLM keys refused at start, with the reason the error gives."""
    from proxy.refusals import GUARDRAIL_KEYS, MODEL_INFO, PARAMS, SETTINGS

    rows = [*(("model_list[].litellm_params." + k, r) for k, r in PARAMS.items()),
            *(("model_list[].model_info." + k, r) for k, r in MODEL_INFO.items()), *SETTINGS.items(),
            *(("guardrails[]." + k, r) for k, r in GUARDRAIL_KEYS.items())]
    lines = ["## Refused keys", "",
             "LiteLLM keys that would do nothing here are refused at start and by `--check`, with their YAML path "
             "and this reason; where a value is listed, that value (which states what the proxy does anyway) is "
             "accepted.", "", "| Key | Accepted value | Reason |", "|---|---|---|"]
    for key, rule in sorted(rows):
        allowed = ", ".join(f"`{json.dumps(v)}`" for v in rule.allowed if v not in (None, [], {})) or "—"
        lines.append(f"| `{key}` | {allowed} | {_cell(rule.reason)} |")
    return [*lines, ""]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown
