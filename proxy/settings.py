"""The YAML config file's shape (LiteLLM-compatible keys), validated strictly: one pydantic model per section.

Unknown keys are errors naming their YAML path; field docstrings are the configuration reference's
descriptions (docs/hooks/config_reference.py). config_loading.py resolves a file into `Settings`.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .cache.config import CacheParams
from .errors import ModelNotFoundError
from .providers import REGISTRY, split_model
from .refusals import PARAMS
from .routing.picker import make_strategy
from .routing.table import routing_fields

log = logging.getLogger("proxy.settings")

ENV_PREFIX = "os.environ/"

# litellm_params keys every deployment understands; a provider adds its own (`Provider.options`, `param_env`).
DEPLOYMENT_PARAMS = {
    "model", "api_key", "api_base", "timeout", "rpm", "tpm", "weight", "order", "headers", "extra_headers",
    "input_cost_per_query", "input_cost_per_token", "max_retries", "custom_llm_provider", "max_parallel_requests",
    "cache_scores", "tags",
}


def _provider_params() -> dict[str, list[str]]:
    """Each provider-specific `litellm_params` key → the providers that read it (for a helpful refusal)."""
    owners: dict[str, list[str]] = {}
    for provider in {id(p): p for p in REGISTRY.values()}.values():
        for key in (*provider.options, *provider.param_env):
            owners.setdefault(key, []).append(provider.name)
    return owners


_OWNERS = _provider_params()


class ConfigError(ValueError):
    """A config problem, with the YAML path of each offending value."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class _Strict(BaseModel):
    # Field docstrings are the configuration reference's descriptions (docs/hooks/config_reference.py).
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ModelEntry(_Strict):
    model_name: str
    """The alias clients send as `model`; entries sharing one are one alias with several deployments."""
    litellm_params: dict[str, Any]
    """The deployment: `model` (`provider/model`) plus the keys listed under [litellm_params](#litellm_params)."""
    model_info: dict[str, Any] = Field(default_factory=dict)
    """`id`: the deployment id in headers, metrics and spend logs (unique; default `<model_name>#<n>`)."""

    @field_validator("litellm_params")
    @classmethod
    def _check_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise ValueError("litellm_params.model is required, as 'provider/model'")
        named = params.get("custom_llm_provider")
        if named is not None:  # LiteLLM's other spelling of the provider: `model: rerank-v3.5` + this
            if named not in REGISTRY:
                known = ", ".join(sorted(REGISTRY))
                raise ValueError(f"custom_llm_provider '{named}' is not a provider; known: {known}")
            if not model.startswith(f"{named}/"):
                params = {**params, "model": f"{named}/{model}"}
        try:
            provider, _ = split_model(params["model"])
        except ModelNotFoundError as exc:
            raise ValueError(exc.message) from None
        unknown = set(params) - DEPLOYMENT_PARAMS - set(provider.options) - set(provider.param_env) - set(PARAMS)
        if unknown:
            raise ValueError("; ".join(
                f"'{key}' is an option of {', '.join(_OWNERS[key])}, not of provider '{provider.name}'"
                if key in _OWNERS else f"unknown litellm_params key '{key}' for provider '{provider.name}'"
                for key in sorted(unknown)))
        provider.check_options(params)
        routing_fields(params)
        if "cache_scores" in params and not isinstance(params["cache_scores"], bool):
            raise ValueError("litellm_params.cache_scores must be true or false")
        tags = params.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise ValueError("litellm_params.tags must be a list of strings (spend row tags, and tag-based routing)")
        return params


class GeneralSettings(_Strict):
    master_key: str | None = None
    """Admin key for the admin API and every model; without one every request is allowed."""
    database_url: str | None = None
    """Spend and key database (SQLAlchemy URL); default `DATABASE_URL`, else the SQLite file `./rerank_proxy.db`."""
    max_request_size_mb: float = 10.0
    """Larger request bodies are refused with 413."""
    max_documents: int = 10_000
    """More documents in one request are refused with 400."""
    max_request_body_memory_mb: float = Field(256.0, gt=0)
    """Request bodies (bytes) that /rerank calls in flight may hold together, per worker; a request that would
    pass it is answered 503 with Retry-After before its body is read."""
    request_header_timeout: float = Field(10.0, gt=0)
    """Seconds a client has to send a request's head (from connecting, or from the first byte of a keep-alive
    connection's next request); then 408 and the connection is closed. CLI server only."""
    request_body_timeout: float = Field(60.0, gt=0)
    """Seconds a client has to send a request's whole body after its head; then 408. CLI server only."""
    max_connections: int = Field(4_096, ge=1)
    """Open client connections per worker (kept below the file-descriptor limit); one more is answered 503
    with Retry-After and closed. CLI server only."""
    store_prompts_in_spend_logs: bool = False
    """Only `false`: the query and documents are never stored (`true` is refused)."""
    max_budget: float | None = None
    """Proxy-wide budget in USD (see [Budgets](budgets.md))."""
    budget_duration: str | None = None
    """Reset period of `max_budget`: `30s`, `5m`, `1h`, `1d`, `2w`, `30d`, `1mo`."""
    max_end_user_budget: float | None = None
    """Default budget (USD, never reset) for end-users without their own."""
    key_cache_ttl: float = 30.0
    """Seconds a key's, end-user's or tag's record is cached. Admin changes to one (or to a key's team or user)
    reach every process within `model_sync_interval` instead; this TTL bounds them only while the change log
    cannot be read."""
    key_cache_max_stale: float = Field(900.0, ge=0)
    """Seconds past `key_cache_ttl` a known key is still served while the database does not answer."""
    database_read_timeout: float = Field(0.5, gt=0)
    """The longest a request waits for a key or end-user read before serving cached records or a 503."""
    spend_flush_interval: float | None = Field(None, ge=0)  # None: the store's (Store.flush_interval)
    """Seconds a spend row may wait for its batch (default SQLite 0.01, PostgreSQL 0.05)."""
    spend_spill_path: str | None = None
    """Where spend rows wait while the database fails or at shutdown: journal and spill file, re-read at the next
    start (default beside the SQLite file; put it on another volume than the database)."""
    spend_spill_max_mb: float = Field(1024.0, gt=0)
    """Bound of the spill file (rows journaled while the database fails); past it rows wait in memory."""
    disable_spend_logs: bool = False
    """Write no spend rows."""
    background_health_checks: bool = False
    """Probe every deployment every `health_check_interval` seconds (billed calls)."""
    health_check_interval: float = 300.0
    """Seconds between background health checks."""
    alerting: list[str] | None = None
    """Refused unless empty: no alerts are sent (alert on `/metrics`, or use a `webhook` callback)."""
    proxy_batch_write_at: float | None = Field(None, ge=0)
    """LiteLLM's name for seconds between spend batch writes: our `spend_flush_interval` (set one, or both equal)."""
    database_connection_pool_limit: int | None = Field(None, ge=1)
    """Most database connections one process holds (pool size, no overflow; default 5 plus 10 overflow):
    total = limit × workers × replicas."""
    disable_schema_update: bool = False
    """Skip migrations at start (run `rerank-proxy migrate` once, e.g. as a Job); the schema is only checked."""
    allow_requests_on_db_unavailable: bool = False
    """LiteLLM's meaning: a key the unreachable database cannot verify is let through, restricted (never admin,
    no key limits); false answers such keys 503. Keys already cached are served either way."""
    metrics_require_auth: bool = False
    """Require the master key (or `metrics_token`) on `GET /metrics`."""
    metrics_token: str | None = Field(None, min_length=16)
    """A token for scrapers, accepted on `GET /metrics` besides the master key (`os.environ/NAME` works);
    setting it turns metrics auth on."""
    metrics_end_user_series: int = Field(100, ge=0)
    """Distinct `end_user` label values per worker; later end-users are counted as `__other__`, 0 leaves the
    label empty. Values are cut to 64 characters."""
    proxy_budget_rescheduler_min_time: float = Field(default=30.0, gt=0)
    """Lower bound (s) of the random interval between budget-reset sweeps."""
    proxy_budget_rescheduler_max_time: float = Field(default=60.0, gt=0)
    """Upper bound (s) of the random interval between budget-reset sweeps."""
    redis_key_prefix: str = "rerank-proxy:"
    """Prefix of every key in Redis: routing state (unless `router_settings.redis_prefix` is set), limits,
    budgets and the result cache."""
    store_model_in_db: bool = False
    """Models added through `/model/new` are stored (provider keys encrypted) and reach every replica."""
    model_sync_interval: float = Field(2.0, gt=0, le=300)
    """Seconds between checks for model, key, end-user and tag changes made by other replicas or workers (the
    propagation bound: a deleted, blocked, rotated or changed key, a blocked or changed end-user, a changed or
    deleted tag apply everywhere within it plus one 2 s read)."""
    upstream_max_connections: int = Field(1000, ge=1)
    """Upstream calls in flight in total; more wait for a slot inside their timeout."""
    upstream_max_connections_per_host: int = Field(500, ge=1)
    """Upstream calls in flight to one host (scheme, host, port): a host that stops answering holds no more,
    calls to other hosts go on (see [Upstream limits](operations.md#upstream-limits))."""
    upstream_max_header_kb: float = Field(64.0, gt=0)
    """Larger upstream answer headers are refused (502) and their connection dropped."""
    upstream_max_response_mb: float = Field(1.0, gt=0)
    """Upstream answer body limit, raw and decoded: this, plus `upstream_response_kb_per_document` per
    document, plus the request's size. Larger answers: 502 at once, connection dropped."""
    upstream_response_kb_per_document: float = Field(4.0, ge=0)
    """The share of the upstream answer body limit each document of the request adds."""
    maximum_spend_logs_retention_period: str | None = None
    """Delete spend rows older than this (`7d`, `30d`, `1mo`...) in small background batches; reports (rollups)
    and budgets keep them. Default: keep every row."""
    maximum_spend_logs_retention_interval: str = "1h"
    """How often the retention sweep runs."""

    @field_validator("budget_duration", "maximum_spend_logs_retention_period", "maximum_spend_logs_retention_interval")
    @classmethod
    def _check_duration(cls, value: str | None) -> str | None:
        from .spend.durations import parse_duration

        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_flush_interval(self) -> GeneralSettings:
        both = self.spend_flush_interval, self.proxy_batch_write_at
        if None not in both and both[0] != both[1]:
            raise ValueError("spend_flush_interval and proxy_batch_write_at are the same setting (seconds between "
                             "spend batch writes) and disagree; set one of them")
        return self

    @property
    def flush_interval(self) -> float | None:
        """Seconds between spend batch writes as configured, None for the store's default."""
        return self.spend_flush_interval if self.spend_flush_interval is not None else self.proxy_batch_write_at


class RouterSettings(_Strict):
    routing_strategy: str = "simple-shuffle"
    """`simple-shuffle`, `least-busy`, `latency-based-routing` or `usage-based-routing` (see [Routing](routing.md))."""
    num_retries: int = Field(2, ge=0)
    """The default when neither section sets it; `litellm_settings.num_retries` applies when this one is unset."""
    timeout: float | None = Field(None, gt=0)
    """Seconds for one request, all attempts and waits included (504 when it runs out)."""
    retry_after: float = Field(0.05, ge=0)
    """Backoff base (s) before retrying a deployment already tried; doubles each time."""
    max_retry_after: float = Field(2.0, ge=0)
    """Cap (s) on one backoff wait, an upstream's `Retry-After` included."""
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    """`[{alias: [fallback, ...]}]`: aliases tried when every deployment of an alias failed."""
    default_fallbacks: list[str] = Field(default_factory=list)
    """Aliases tried after any alias's own fallbacks."""
    allowed_fails: int = Field(3, ge=1)
    """Failures within a minute before a deployment cools down."""
    cooldown_time: float = Field(5.0, ge=0)
    """Seconds a cooled deployment is skipped."""
    max_cooldown_time: float = Field(60.0, ge=0)
    """Cap (s) on a cooldown lengthened by a 429's `Retry-After`."""
    redis_url: str | None = None
    """Share routing state, limits, budgets and the result cache between replicas, over one connection per
    process (default the `REDIS_URL` variable)."""
    redis_prefix: str | None = None
    """Prefix of the routing keys in Redis (followed by `:`); unset: `general_settings.redis_key_prefix`, which
    every other key carries."""
    redis_refresh_interval: float = Field(0.1, ge=0)
    """Seconds between refreshes of the in-process copy of shared routing state (0: read on every request)."""
    redis_host: str | None = None
    """Redis host, when `redis_url` is not set."""
    redis_port: int | None = None
    """Redis port with `redis_host` (default 6379)."""
    redis_password: str | None = None
    """Redis password with `redis_host`."""
    enable_pre_call_checks: bool = False
    """Enforce deployments' `rpm`/`tpm` with any strategy."""
    enable_tag_filtering: bool = False
    """LiteLLM's tag-based routing: a request's tags (`metadata.tags`, `x-litellm-tags`, its key's and team's)
    send it only to deployments whose `litellm_params.tags` match, else to those tagged `default`, else 401;
    untagged requests go to the `default` ones if any (see [Routing](routing.md#tag-based-routing))."""
    tag_filtering_match_any: bool = True
    """With `enable_tag_filtering`: a deployment matches when it has any one of the request's tags (`false`:
    all of them)."""
    model_group_alias: dict[str, str | dict[str, Any]] = Field(default_factory=dict)
    """Other names for an alias: `{name: alias}`, or `{name: {model: alias, hidden: true}}` to keep it off `/models`."""
    routing_strategy_args: dict[str, Any] = Field(default_factory=dict)
    """Strategy options, e.g. `exploration`, `lowest_latency_buffer`, `ttl` for `latency-based-routing`."""
    seed: int | None = None
    """Seed for the router's random choices (reproducible routing)."""

    @model_validator(mode="after")
    def _check_strategy(self) -> RouterSettings:
        make_strategy(self.routing_strategy, self.routing_strategy_args)
        return self


class LitellmSettings(_Strict):
    callbacks: list[Any] = Field(default_factory=list)
    """Logging callbacks for success and failure events: `webhook`, `otel`, `prometheus` or `package.module:Name`."""
    success_callback: list[Any] = Field(default_factory=list)
    """Callbacks for successes only (status < 400)."""
    failure_callback: list[Any] = Field(default_factory=list)
    """Callbacks for failures only."""
    callback_settings: dict[str, Any] = Field(default_factory=dict)
    """Options per callback, e.g. `webhook: {url, headers, batch_size, ...}` (see [Operations](operations.md))."""
    num_retries: int | None = Field(None, ge=0)
    """Used when `router_settings.num_retries` is unset."""
    request_timeout: float | None = Field(None, gt=0)
    """The default `timeout` (seconds) of every deployment that sets none (LiteLLM's meaning); else 60."""
    fallbacks: list[dict[str, list[str]]] | None = None
    """Used when `router_settings.fallbacks` is empty."""
    default_fallbacks: list[str] | None = None
    """Used when `router_settings.default_fallbacks` is empty."""
    drop_params: bool | None = None
    """Only `true`: an option the provider lacks is always dropped and named in `meta.warnings`."""
    set_verbose: bool | None = None
    """Debug logs, as `--detailed_debug`."""
    json_logs: bool | None = None
    """Every log line as JSON, not only the access lines."""
    telemetry: bool | None = None
    """Only `false`: no usage telemetry is ever sent anywhere."""
    max_budget: float | None = None
    """Proxy-wide budget, when `general_settings.max_budget` is unset."""
    budget_duration: str | None = None
    """Reset period of `litellm_settings.max_budget`."""
    max_end_user_budget: float | None = None
    """Default end-user budget, when `general_settings.max_end_user_budget` is unset."""
    cache: bool | None = None
    """Turn the result cache on (whole answers and per-document scores; see `cache_params`)."""
    cache_params: CacheParams | None = None
    """The result cache: `type` (local | redis), Redis connection, `ttl`, `namespace`, bounds and scope (below and
    [Result cache](cache.md))."""
    require_auth_for_metrics_endpoint: bool | None = None
    """LiteLLM's name for `general_settings.metrics_require_auth`."""
    ssl_verify: bool | str | None = None
    """Upstream TLS: false skips certificate checks; a path is a PEM CA bundle trusted instead of the
    system's (default: the environment's SSL_CERT_FILE, else the system store)."""
    disable_end_user_cost_tracking_prometheus_only: bool | None = None
    """Leave the `end_user` label of the usage metrics empty (one series per end-user otherwise); spend per
    end-user is still recorded in SQL."""

    @field_validator("ssl_verify")
    @classmethod
    def _check_ca_bundle(cls, value: bool | str | None) -> bool | str | None:
        if isinstance(value, str):
            try:
                ssl.create_default_context(cafile=value)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load the CA bundle {value!r}: {exc}") from None
        return value


class GuardrailEntry(_Strict):
    guardrail_name: str
    """The name keys and requests use to ask for it; unique."""
    litellm_params: dict[str, Any]
    """`guardrail` (the type), `mode: pre_call`, `default_on`, `on_error` and the type's options."""
    guardrail_info: dict[str, Any] = Field(default_factory=dict)
    """Refused unless empty: LiteLLM's admin-UI metadata, which rerank-proxy has no use for."""

    @field_validator("litellm_params")
    @classmethod
    def _check_guardrail(cls, params: dict[str, Any]) -> dict[str, Any]:
        from .guardrails import check_entry

        check_entry(params)
        return params


class ConfigFile(_Strict):
    model_list: list[ModelEntry] = Field(default_factory=list)
    """Deployments, one entry each."""
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    """Server, keys, database, budgets."""
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    """Routing strategy, retries, fallbacks, cooldowns, Redis."""
    litellm_settings: LitellmSettings = Field(default_factory=LitellmSettings)
    """Callbacks, logging and LiteLLM's spellings of other settings."""
    guardrails: list[GuardrailEntry] = Field(default_factory=list)
    """Checks on the query, in order."""
    environment_variables: dict[str, str] = Field(default_factory=dict)
    """Values for `os.environ/NAME` references (the real environment wins)."""

    @field_validator("guardrails")
    @classmethod
    def _unique_guardrails(cls, entries: list[GuardrailEntry]) -> list[GuardrailEntry]:
        names = [e.guardrail_name for e in entries]
        if len(names) != len(set(names)):
            raise ValueError("guardrail_name values must be unique")
        return entries


# The resolved config lives in config_loading.py (it imports this module's models); these names stay importable
# from here for everyone who knows them as `proxy.settings.<name>`.
_LOADING = {"DEFAULT_CONFIG", "Settings", "load_settings", "parse_config", "read_config"}


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        from . import config_loading

        return getattr(config_loading, name)
    raise AttributeError(f"module 'proxy.settings' has no attribute '{name}'")
