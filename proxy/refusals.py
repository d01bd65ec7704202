"""LiteLLM settings we recognise but do not serve: refused at start and by `--check`, each naming its YAML
path and saying why, instead of being accepted and ignored.

A `Refusal` may allow the values that describe what the proxy does anyway (`drop_params: true`,
`store_prompts_in_spend_logs: false`); any other value is refused. `tests/test_config_keys.py` walks every
key the config model accepts and checks each one is either proven to work or listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    allowed: tuple[Any, ...] = (None,)
    """Values that state the proxy's own behaviour, so accepting them ignores nothing."""

    def refuses(self, value: Any) -> bool:
        return not any(value is ok or (type(value) is type(ok) and value == ok) for ok in self.allowed)


# Features other issues deliver: each line goes when its feature lands.
NOT_YET: dict[str, Refusal] = {}

_DROPS = Refusal("rerank-proxy always drops a request option the chosen provider does not support and names it "
                 "in the response's meta.warnings; only `drop_params: true` describes that", (None, True))

SETTINGS: dict[str, Refusal] = {
    "general_settings.alerting": Refusal(
        "alerts (Slack, email, ...) are not sent by rerank-proxy; alert on /metrics or use a 'webhook' "
        "callback (litellm_settings.callbacks) instead; remove it", (None, [])),
    "general_settings.store_prompts_in_spend_logs": Refusal(
        "rerank-proxy never stores query or document text in the spend logs; remove it or set it to false",
        (None, False)),
    "litellm_settings.drop_params": _DROPS,
    "litellm_settings.telemetry": Refusal("rerank-proxy sends no usage telemetry anywhere; only `telemetry: false` "
                                          "describes that", (None, False)),
    **{path: rule for path, rule in NOT_YET.items() if not path.startswith("litellm_params.")},
}

PARAMS: dict[str, Refusal] = {
    "stream_timeout": Refusal("rerank answers are not streamed, so stream_timeout never applies; use timeout"),
    "api_version": Refusal("no rerank provider takes an API version parameter; for Cohere and azure_ai the "
                           "api_base path decides it (…/v1/rerank or …/v2/rerank)"),
    "organization": Refusal("an OpenAI setting that no rerank provider uses; remove it"),
    "region_name": Refusal("write aws_region_name (Bedrock's region)"),
    "vertex_location": Refusal("Vertex AI ranking is served from the 'global' location only; remove it",
                               (None, "global")),
    "drop_params": _DROPS,
    **{path.removeprefix("litellm_params."): rule for path, rule in NOT_YET.items()
       if path.startswith("litellm_params.")},
}
"""Refused `litellm_params` keys, for every provider."""

MODEL_INFO: dict[str, Refusal] = {
    "enable_tag_filtering": Refusal("tag-based routing is switched on for every model at once, with "
                                    "router_settings.enable_tag_filtering; remove it"),
    "allow_fail_open": Refusal("tag routing never falls open: when `!`/`&` tags leave no deployment the request "
                               "gets 401; remove it or set it to false", (None, False)),
}
"""Refused `model_info` keys (LiteLLM's tag-routing switches per model group)."""

GUARDRAIL_KEYS: dict[str, Refusal] = {
    "guardrail_info": Refusal("descriptive metadata for LiteLLM's admin UI, which rerank-proxy does not have; "
                              "remove it", (None, {})),
}
"""Refused keys of a `guardrails` entry."""


def refusals(raw: Mapping[str, Any]) -> list[str]:
    """One problem (`yaml.path: why`) for each refused key the config sets to a refused value."""
    problems = []
    for path, rule in SETTINGS.items():
        section, key = path.split(".")
        block = raw.get(section)
        if isinstance(block, Mapping) and key in block and rule.refuses(block[key]):
            problems.append(f"{path}: {rule.reason}")
    for i, params in _items(raw, "model_list", "litellm_params"):
        problems += [f"model_list[{i}].litellm_params.{key}: {rule.reason}"
                     for key, rule in PARAMS.items() if key in params and rule.refuses(params[key])]
    for i, info in _items(raw, "model_list", "model_info"):
        problems += [f"model_list[{i}].model_info.{key}: {rule.reason}"
                     for key, rule in MODEL_INFO.items() if key in info and rule.refuses(info[key])]
    for i, entry in _items(raw, "guardrails", None):
        problems += [f"guardrails[{i}].{key}: {rule.reason}"
                     for key, rule in GUARDRAIL_KEYS.items() if key in entry and rule.refuses(entry[key])]
    return problems


def _items(raw: Mapping[str, Any], section: str, field: str | None) -> list[tuple[int, Mapping[str, Any]]]:
    """(position, mapping) of each entry of a list section, or of each entry's `field`."""
    entries = raw.get(section)
    found = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        value = entry.get(field) if field and isinstance(entry, Mapping) else entry
        if isinstance(value, Mapping):
            found.append((i, value))
    return found
