"""`proxy.Router`: the server's router for SDK users — LiteLLM's `model_list`, and `rerank`/`close` that block.

The routing package knows only resolved deployments; reading a `model_list` (the config file's own rules)
and running coroutines on the SDK's background loop belong to this outer layer, so routing imports neither
the settings nor the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .config_loading import parse_config
from .normalise import Ranked
from .providers import Deployment
from .request import make_request
from .routing import Outcome
from .routing import Router as RoutingRouter
from .sdk import run_sync, through_cache
from .tags import request_tags
from .wire import RerankResponse


class Router(RoutingRouter):
    """Load balancing, retries, cooldowns and fallbacks in this process, over `aliases` and/or LiteLLM's
    `model_list` entries (`model_name`, `litellm_params`, `model_info.id`; `os.environ/NAME` values are read
    from `environ`, else the process environment). Every other option is the server router's."""

    def __init__(self, aliases: Mapping[str, Sequence[Deployment]] | None = None, *,
                 model_list: list[dict[str, Any]] | None = None, environ: Mapping[str, str] | None = None,
                 **options: Any):
        table: dict[str, list[Deployment]] = {alias: list(deps) for alias, deps in (aliases or {}).items()}
        if model_list:
            parsed = parse_config({"model_list": model_list}, os.environ if environ is None else environ)
            for alias, deps in parsed.aliases.items():
                table.setdefault(alias, []).extend(deps)
        super().__init__(table, **options)

    async def arerank(self, model: str, query: str, documents: list[Any], *, top_n: int | None = None,
                      return_documents: bool | None = True, rank_fields: list[str] | None = None,
                      max_chunks_per_doc: int | None = None, max_tokens_per_doc: int | None = None,
                      priority: int | None = None, relevant_spans: dict[str, Any] | None = None,
                      fallbacks: list[str] | None = None, cache: Any = None,
                      metadata: dict[str, Any] | None = None) -> RerankResponse:
        """`cache`: as `proxy.arerank`'s (a `proxy.Cache`, controls for `proxy.cache`, or False). `metadata`:
        LiteLLM's, whose `tags` route the call when the router has `enable_tag_filtering`."""
        request = make_request(
            query, documents, top_n=top_n, return_documents=return_documents, rank_fields=rank_fields,
            max_chunks_per_doc=max_chunks_per_doc, max_tokens_per_doc=max_tokens_per_doc, priority=priority,
            relevant_spans=relevant_spans,
        )
        outcome = Outcome()
        tags = request_tags(metadata, None) if metadata else ()

        async def compute() -> tuple[Ranked, str | None]:
            await self.route(model, request, fallbacks=fallbacks, outcome=outcome, tags=tags)
            # a fallback's answer is stored under the fallback
            return outcome.answer(), self.answer_scope(outcome.alias, tags)

        return (await through_cache(cache, self.answer_scope(model, tags), request, compute)).to_response()

    def rerank(self, model: str, query: str, documents: list[Any], **kwargs: Any) -> RerankResponse:
        """Blocking `arerank`, run on the SDK's background event loop (with that loop's own connections)."""
        return run_sync(self.arerank(model, query, documents, **kwargs))

    def close(self) -> None:
        """Close what the blocking `rerank` opened; `await aclose()` in each event loop that used `arerank`."""
        run_sync(self.aclose())
