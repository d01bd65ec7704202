"""Turn a `provider/model` string plus parameters into a resolved `Deployment`.

Shared by the SDK (environment = os.environ at call time) and the config loader (environment = the
mapping given at load), so both read a provider's documented variables the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .providers import Deployment, split_model

# Keys of `litellm_params` that the deployment itself understands; everything else is a provider param.
_OWN_KEYS = {"model", "api_key", "api_base", "timeout", "headers", "extra_headers", "input_cost_per_query",
             "input_cost_per_token", "cache_scores"}


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def resolve_deployment(model: str, params: Mapping[str, Any] | None = None, *,
                       environ: Mapping[str, str], deployment_id: str = "", default_timeout: float = 60.0
                       ) -> Deployment:
    params = dict(params or {})
    provider, upstream_model = split_model(model)
    api_key = params.get("api_key") or _first(environ, provider.api_key_env)
    api_base = params.get("api_base") or _first(environ, provider.api_base_env)
    missing = None
    if provider.requires_api_key and not api_key:
        missing = provider.api_key_env[0] if provider.api_key_env else "api_key"
    if provider.requires_api_base and not api_base and not missing:
        missing = provider.api_base_env[0] if provider.api_base_env else "api_base"
    extras = {k: v for k, v in params.items() if k not in _OWN_KEYS}
    for name, env_names in provider.param_env.items():
        if extras.get(name) in (None, ""):
            value = _first(environ, env_names)
            if value:
                extras[name] = value
    headers = {**(params.get("headers") or {}), **(params.get("extra_headers") or {})}
    return Deployment(
        provider=provider,
        model=upstream_model,
        api_base=api_base,
        api_key=api_key,
        timeout=float(params.get("timeout") or default_timeout),
        headers={str(k): str(v) for k, v in headers.items()},
        params=extras,
        input_cost_per_query=_decimal(params.get("input_cost_per_query")),
        input_cost_per_token=_decimal(params.get("input_cost_per_token")),
        missing_env=missing,
        id=deployment_id or model,
        cache_scores=params.get("cache_scores") is not False,
    )
