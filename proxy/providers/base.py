"""What a provider is: a declaration plus two pure functions, `build` and `parse`.

A provider file never opens a socket, reads the environment, logs, retries, sorts or applies `top_n`:
the transport does I/O once and `normalise` shapes every provider's scores the same way.

The values made once per request (`UpstreamRequest`, `UpstreamResponse`, `Usage`, `ProviderResult`, and
`RerankRequest`, `Ranked`, `SpendEvent` elsewhere) are plain slotted dataclasses, not frozen ones: a
frozen dataclass's `__init__` sets every field through `object.__setattr__`, about four times the cost, and
nothing changes them after they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple

import httpx

from ..errors import ConfigurationError, UpstreamMalformedError
from ..request import RerankRequest


@dataclass(frozen=True, slots=True)
class Deployment:
    """One callable upstream model, with everything needed to reach it already resolved."""

    provider: Provider
    model: str
    api_base: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    """Provider options such as `aws_region_name` or `vertex_project`."""
    input_cost_per_query: Decimal | None = None
    input_cost_per_token: Decimal | None = None
    missing_env: str | None = None
    """Name of an environment variable the deployment needs but did not find."""
    id: str = ""
    cache_scores: bool = True
    """False: the result cache never reuses this deployment's per-document scores (a listwise model whose
    scores depend on the other documents); whole answers are still cached."""

    @property
    def name(self) -> str:
        return f"{self.provider.name}/{self.model}"

    def require_base(self) -> str:
        base = self.api_base or self.provider.default_api_base
        if not base:
            raise ConfigurationError(f"Provider '{self.provider.name}' needs api_base for model '{self.model}'")
        return base.rstrip("/")

    def require_param(self, name: str, env_hint: str) -> Any:
        value = self.params.get(name)
        if value in (None, ""):
            raise ConfigurationError(
                f"Provider '{self.provider.name}' needs '{name}' (parameter or {env_hint}) for model '{self.model}'"
            )
        return value


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    json: Any
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    auth: httpx.Auth | None = None
    timeout: float = 60.0
    documents: int = 0
    """How many documents the answer ranks: sizes the limit on its body (http_body.ResponseLimits)."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Usage:
    search_units: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None

    @property
    def tokens(self) -> int | None:
        return self.total_tokens if self.total_tokens is not None else self.input_tokens

    def __add__(self, other: Usage) -> Usage:
        def add(a, b):
            return b if a is None else a if b is None else a + b

        return Usage(
            add(self.search_units, other.search_units),
            add(self.input_tokens, other.input_tokens),
            add(self.output_tokens, other.output_tokens),
            add(self.total_tokens, other.total_tokens),
        )


class Scored(NamedTuple):
    """One document's score. A named tuple, not a dataclass: a 1,000-document answer builds 1,000 of them,
    and a frozen dataclass costs several times as much to construct."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    score: float
    extra: dict[str, Any] | None = None
    """Provider-specific fields kept on the result (e.g. NIM's raw `logit`)."""


def scored(indices: list[Any], scores: list[Any]) -> list[Scored]:
    """`Scored(index, score)` for two parallel lists, as `int(index)` and `float(score)` (raising as they do).

    Built with C-level loops (`map`, `zip`, no per-item Python frame or `Scored.__new__`): JSON already gives
    ints and floats, so the conversion pass runs only for lists that hold anything else.
    """
    if not set(map(type, indices)) <= _INT:
        indices = [int(index) for index in indices]
    if not set(map(type, scores)) <= _FLOAT:
        scores = [float(score) for score in scores]
    return list(map(tuple.__new__, repeat(Scored), zip(indices, scores, repeat(None))))


_INT, _FLOAT = frozenset((int,)), frozenset((float,))


def scores_from(items: list[Any], score_key: str, index_key: str = "index") -> list[Scored]:
    """`scored` over a list of result objects such as `{"index": 3, "relevance_score": 0.9}`."""
    return scored(list(map(itemgetter(index_key), items)), list(map(itemgetter(score_key), items)))


@dataclass(slots=True)
class ProviderResult:
    scores: list[Scored]
    usage: Usage = field(default_factory=Usage)
    upstream_id: str | None = None


class Provider:
    """Base declaration. Subclasses (usually a wire family) set class attributes and override little."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    api_key_env: ClassVar[tuple[str, ...]] = ()
    api_base_env: ClassVar[tuple[str, ...]] = ()
    default_api_base: ClassVar[str | None] = None
    requires_api_key: ClassVar[bool] = True
    requires_api_base: ClassVar[bool] = False
    max_documents_per_call: ClassVar[int | None] = None
    param_env: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Provider params read from the environment when not given (e.g. region, project)."""
    request_options: ClassVar[frozenset[str]] = frozenset()
    """The Cohere request options (`request.OPTIONS`) this provider honours; the others are dropped, each named
    in the answer's `meta.warnings` (one rule for every provider)."""
    options: ClassVar[tuple[str, ...]] = ()
    options_in_body: ClassVar[bool] = True
    """The request's `params` may set `options` too (they go into the upstream body)."""
    """The `litellm_params` keys this provider reads besides the deployment's own (`model`, `api_key`, ...);
    with `param_env`'s keys these are all a deployment of it accepts (config validation reads them)."""
    extra: ClassVar[str | None] = None
    """The pip extra this provider needs, if any."""
    in_process: ClassVar[bool] = False

    def check_options(self, params: dict[str, Any]) -> None:
        """Raise ValueError for `litellm_params` this provider cannot use together (config time)."""

    def unsupported(self, request: RerankRequest, deployment: Deployment) -> tuple[str, ...]:
        """The options set on `request` that this provider drops (its `options` go in the body when it has
        `options_in_body`)."""
        taken = self.options if self.options_in_body else ()
        return tuple(name for name in request.options if name not in self.request_options and name not in taken)

    # -- build -------------------------------------------------------------------------------------
    def build(self, request: RerankRequest, deployment: Deployment) -> UpstreamRequest:
        return UpstreamRequest(
            url=self.url(request, deployment),
            json=self.body(request, deployment),
            headers={"content-type": "application/json", "accept": "application/json",
                     **self.auth_headers(deployment), **deployment.headers},
            auth=self.auth(deployment),
            timeout=deployment.timeout,
        )

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        raise NotImplementedError

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        raise NotImplementedError

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        return {"authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}

    def auth(self, deployment: Deployment) -> httpx.Auth | None:
        return None

    # -- parse -------------------------------------------------------------------------------------
    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        raise NotImplementedError

    def error_message(self, data: Any) -> str:
        """Pull the human message out of the provider's error body (any shape)."""
        return find_message(data)

    # -- in-process providers ----------------------------------------------------------------------
    def rank(self, request: RerankRequest, deployment: Deployment) -> ProviderResult:
        raise NotImplementedError


def find_message(data: Any) -> str:
    """The first message-like string in an error body: `message`, `error`, `detail`, nested or not."""
    if isinstance(data, str):
        return data[:500]
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "error_message", "Message"):
            if key in data:
                found = find_message(data[key])
                if found:
                    return found
    if isinstance(data, list) and data:
        return find_message(data[0])
    return "" if data is None else str(data)[:500]


def malformed(provider: str, why: str) -> UpstreamMalformedError:
    return UpstreamMalformedError(f"{provider} returned a response we could not read: {why}", provider=provider)


def as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
