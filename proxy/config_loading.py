"""The YAML config resolved once at load: `Settings`, with every alias mapped to ready-to-call deployments.

`os.environ/NAME` values are read from the environ mapping given to `load_settings`; nothing reads
`os.environ` after that. A deployment whose variable is missing still loads: it is marked unavailable
and answers 503, so one missing key does not take the whole gateway down. The file's shape (one strict
pydantic model per section) is settings.py.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .cache.config import CacheParams
from .deployments import resolve_deployment
from .http_body import ResponseLimits
from .providers import Deployment
from .redis_link import connection_url
from .refusals import refusals
from .routing.table import group_alias_target
from .settings import (
    ENV_PREFIX,
    ConfigError,
    ConfigFile,
    GeneralSettings,
    RouterSettings,
)
from .transport import ClientOptions

log = logging.getLogger("proxy.settings")


@dataclass(frozen=True)
class Settings:
    """Everything the server needs, resolved: aliases map to ready-to-call deployments."""

    config: ConfigFile
    aliases: dict[str, tuple[Deployment, ...]]
    missing_env: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    raw: Any = None
    """The document as read (before `os.environ/` resolution): what a reload merges stored models into."""

    @property
    def general(self) -> GeneralSettings:
        return self.config.general_settings

    @property
    def router(self) -> RouterSettings:
        return self.config.router_settings

    @property
    def master_key(self) -> str | None:
        return self.general.master_key

    @property
    def database_url(self) -> str | None:
        return self.general.database_url or self.environ.get("DATABASE_URL")

    @property
    def client_options(self) -> ClientOptions:
        """How the upstream client is built (general_settings.upstream_*, litellm_settings.ssl_verify)."""
        general, verify = self.general, self.config.litellm_settings.ssl_verify
        return ClientOptions(
            max_connections=general.upstream_max_connections,
            max_connections_per_host=general.upstream_max_connections_per_host,
            limits=ResponseLimits(max_header_bytes=int(general.upstream_max_header_kb * 1024),
                                  base_body_bytes=int(general.upstream_max_response_mb * 1024 * 1024),
                                  body_bytes_per_document=int(general.upstream_response_kb_per_document * 1024)),
            verify=verify is not False,
            ca_bundle=verify if isinstance(verify, str) else self.environ.get("SSL_CERT_FILE") or None,
        )

    @property
    def redis_url(self) -> str | None:
        router = self.router
        return (connection_url(router.redis_url, router.redis_host, router.redis_port, router.redis_password)
                or self.environ.get("REDIS_URL"))

    @property
    def cache(self) -> CacheParams | None:
        """The result cache's settings with its type resolved, or None when caching is off."""
        lite = self.config.litellm_settings
        if not lite.cache:
            return None
        params = lite.cache_params or CacheParams()
        if not params.caches_rerank:
            return None
        if params.type is None:
            redis = params.redis_url() or self.redis_url
            params = params.model_copy(update={"type": "redis" if redis else "local"})
        return params

    @property
    def cache_redis_url(self) -> str | None:
        """The Redis the cache uses when it has its own (None: the server's, shared with limits)."""
        params = self.cache
        return params.redis_url() if params is not None and params.type == "redis" else None


DEFAULT_CONFIG: dict[str, Any] = {
    "model_list": [{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}],
}


def _resolve_env(value: Any, environ: Mapping[str, str], path: str, missing: dict[str, str]) -> Any:
    """Replace every `os.environ/NAME` string; record (path → NAME) for the ones not set."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if name in environ and environ[name] != "":
            return environ[name]
        missing[path] = name
        return None
    if isinstance(value, dict):
        return {k: _resolve_env(v, environ, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, environ, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    return value


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        path = where.replace(".litellm_params.litellm_params", ".litellm_params")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{_bracket(path)}: {message}")
    return problems


def _bracket(path: str) -> str:
    parts: list[str] = []
    for part in path.split("."):
        if part.isdigit() and parts:
            parts[-1] += f"[{part}]"
        else:
            parts.append(part)
    return ".".join(parts)


def parse_config(raw: Any, environ: Mapping[str, str], source: str | None = None) -> Settings:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): the config must be a mapping"])
    environ = {**raw.get("environment_variables", {}), **environ} if isinstance(
        raw.get("environment_variables"), dict) else dict(environ)
    missing: dict[str, str] = {}
    resolved = _resolve_env(raw, environ, "", missing)
    refused = refusals(resolved)
    try:
        config = ConfigFile.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(refused + _problems(exc)) from None
    if refused:
        raise ConfigError(refused)
    outside_models = {p: n for p, n in missing.items() if not p.startswith("model_list")}
    if outside_models:
        raise ConfigError([f"{p}: environment variable {n} is not set" for p, n in outside_models.items()])
    _check_model_storage(config, environ)
    aliases = _deployments(config, environ, missing)
    _check_group_aliases(config.router_settings, aliases.keys())
    _inherit_num_retries(config)
    settings = Settings(
        config=config,
        aliases={alias: tuple(deps) for alias, deps in aliases.items()},
        missing_env=tuple(sorted(set(n for p, n in missing.items()))),
        environ=environ,
        source=source,
        raw=raw,
    )
    _check_cache(settings)
    return settings


def _check_cache(settings: Settings) -> None:
    lite = settings.config.litellm_settings
    params = lite.cache_params
    if lite.cache and params is not None and not params.caches_rerank:
        log.warning("litellm_settings.cache_params.supported_call_types names no rerank call type: "
                    "rerank answers are not cached")
    cache = settings.cache
    if cache is not None and cache.type == "redis" and not cache.redis_url() and not settings.redis_url:
        raise ConfigError(["litellm_settings.cache_params.type: 'redis' needs a Redis: set cache_params.url "
                           "(or host/port/password), router_settings.redis_url or REDIS_URL"])


def _deployments(config: ConfigFile, environ: Mapping[str, str], missing: dict[str, str]
                 ) -> dict[str, list[Deployment]]:
    """The model_list as {alias: deployments}; every deployment id (given or generated) must be unique."""
    aliases: dict[str, list[Deployment]] = {}
    owners: dict[str, str] = {}
    problems: list[str] = []
    for i, entry in enumerate(config.model_list):
        params = dict(entry.litellm_params)
        absent = [n for p, n in missing.items() if p.startswith(f"model_list[{i}].")]
        given = entry.model_info.get("id")
        deployment_id = str(given or f"{entry.model_name}#{len(aliases.get(entry.model_name, []))}")
        where = f"model_list[{i}].model_info.id" if given else f"model_list[{i}]"
        if deployment_id in owners:
            generated = "" if given else " (generated from model_name and position: set model_info.id)"
            problems.append(f"{where}: deployment id '{deployment_id}' is already used by {owners[deployment_id]}"
                            f"{generated}; deployment ids must be unique")
        owners.setdefault(deployment_id, where)
        deployment = resolve_deployment(params["model"], params, environ=environ, deployment_id=deployment_id,
                                        default_timeout=config.litellm_settings.request_timeout or 60.0)
        if absent:
            deployment = _with_missing(deployment, absent[0])
        aliases.setdefault(entry.model_name, []).append(deployment)
    if problems:
        raise ConfigError(problems)
    return aliases


def _check_model_storage(config: ConfigFile, environ: Mapping[str, str]) -> None:
    from .secret_box import SALT_ENV, SecretBox

    general = config.general_settings
    if general.store_model_in_db and SecretBox.from_environ(environ, general.master_key) is None:
        raise ConfigError([f"general_settings.store_model_in_db: stored provider keys are encrypted with "
                           f"{' or '.join(SALT_ENV)} (or the master_key): set one of them"])


def _check_group_aliases(router: RouterSettings, groups: Collection[str]) -> None:
    problems = []
    for alias, value in router.model_group_alias.items():
        try:
            group_alias_target(alias, value, groups)
        except ValueError as exc:
            problems.append(f"router_settings.model_group_alias.{alias}: {exc}")
    if problems:
        raise ConfigError(problems)


def _inherit_num_retries(config: ConfigFile) -> None:
    """LiteLLM's order: `router_settings.num_retries`, else `litellm_settings.num_retries`, else 2."""
    inherited = config.litellm_settings.num_retries
    if inherited is not None and "num_retries" not in config.router_settings.model_fields_set:
        config.router_settings.num_retries = inherited


def _with_missing(deployment: Deployment, name: str) -> Deployment:
    from dataclasses import replace

    return replace(deployment, missing_env=name)


def load_settings(path: str | Path | None, environ: Mapping[str, str]) -> Settings:
    """Read the YAML file at `path` (the built-in offline default when None)."""
    return parse_config(read_config(path), environ, source=None if path is None else str(path))


def read_config(path: str | Path | None) -> Any:
    """The YAML document at `path` as read, before validation (the built-in offline default when None)."""
    if path is None:
        return DEFAULT_CONFIG
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return raw
