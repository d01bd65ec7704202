"""Cohere rerank wire models (v1 and v2): what we accept and what we answer.

Every optional field accepts JSON null, because the official SDK sends explicit nulls. An unknown field is not
refused (clients built for LiteLLM or other gateways send their own) but named in the answer's `meta.warnings`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt, StrictStr

Document = StrictStr | dict[str, Any]


class RerankBody(BaseModel):
    """A `/rerank`, `/v1/rerank` or `/v2/rerank` request body."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: StrictStr | None = None
    query: StrictStr
    documents: list[Document]
    top_n: StrictInt | None = None
    rank_fields: list[StrictStr] | None = None
    return_documents: StrictBool | None = None
    max_chunks_per_doc: StrictInt | None = None
    max_tokens_per_doc: StrictInt | None = None
    priority: StrictInt | None = None
    relevant_spans: dict[str, Any] | None = None
    """Cohere v2's `{mode, threshold, max_spans}`, forwarded as sent to providers that take it."""
    # LiteLLM's provider options in the body: passed to providers that take them (vLLM, DeepInfra).
    instruction: StrictStr | None = None
    truncate_prompt_tokens: StrictInt | None = None
    truncation_side: StrictStr | None = None
    max_tokens_per_query: StrictInt | None = None
    # Gateway fields (LiteLLM-compatible), not sent upstream.
    user: StrictStr | None = None
    fallbacks: list[StrictStr] | None = None
    guardrails: list[StrictStr] | None = None
    metadata: dict[str, Any] | None = None

    cache: dict[str, Any] | None = None
    """LiteLLM's dynamic cache controls: `{"no-cache": true, "no-store": true, "ttl": 300, "namespace": "x"}`."""

    def rare_arguments(self) -> dict[str, Any] | None:
        """`make_request`'s rarely used arguments (`priority`, `relevant_spans`, LiteLLM's provider options as
        `params`, the `unknown` fields' names), or None when the body sets none of them: the common case, one
        pass of checks."""
        extra = self.__pydantic_extra__
        if self.priority is None and self.relevant_spans is None and self.instruction is None \
                and self.truncate_prompt_tokens is None and self.truncation_side is None \
                and self.max_tokens_per_query is None and not extra:
            return None
        options = {"instruction": self.instruction, "truncate_prompt_tokens": self.truncate_prompt_tokens,
                   "truncation_side": self.truncation_side, "max_tokens_per_query": self.max_tokens_per_query}
        return {"priority": self.priority, "relevant_spans": self.relevant_spans,
                "params": {name: value for name, value in options.items() if value is not None},
                "unknown": tuple(name for name, value in extra.items() if value is not None) if extra else ()}


class ApiVersion(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str
    is_deprecated: bool | None = None
    is_experimental: bool | None = None


class BilledUnits(BaseModel):
    model_config = ConfigDict(extra="allow")

    search_units: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    total_tokens: float | None = None


class Tokens(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_tokens: float | None = None
    output_tokens: float | None = None


class Meta(BaseModel):
    model_config = ConfigDict(extra="allow")

    api_version: ApiVersion | None = None
    billed_units: BilledUnits | None = None
    tokens: Tokens | None = None
    warnings: list[str] | None = None


class RerankDocument(BaseModel):
    """`{"text": ...}` for a string document; an object document is echoed whole (v1)."""

    model_config = ConfigDict(extra="allow")

    text: str | None = None


class RerankResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    """A Cohere-shaped rerank response; `.cost` is the USD price of the call (not serialised)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    results: list[RerankResult] = Field(default_factory=list)
    meta: Meta | None = None

    _cost: Decimal = PrivateAttr(default_factory=Decimal)
    _deployment: str | None = PrivateAttr(default=None)
    _cache: str | None = PrivateAttr(default=None)

    @property
    def cost(self) -> float:
        return float(self._cost)

    @property
    def cost_decimal(self) -> Decimal:
        return self._cost

    @property
    def deployment(self) -> str | None:
        """Which deployment answered (`provider/model`, or the configured deployment id)."""
        return self._deployment

    @property
    def cache(self) -> str | None:
        """hit | partial | miss when a result cache was used for this call, else None."""
        return self._cache

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ErrorBody(BaseModel):
    message: str
