"""OpenTelemetry traces (extra `otel`): one span per rerank request, with a child span for each guardrail
and each upstream attempt.

Spans are built after the fact, from timestamps the engine and router keep, by the callback's background
task: the request path pays for a small tuple, not for span creation. Config
(`litellm_settings.callback_settings.otel`, falling back to LiteLLM's environment variables): `exporter`
(`otlp_http`, default, or `console`; `OTEL_EXPORTER`), `endpoint` (`OTEL_ENDPOINT`, default
`http://localhost:4318/v1/traces`), `headers` (mapping, or `OTEL_HEADERS` as `k=v,k2=v2`), `service_name`
(`OTEL_SERVICE_NAME`, default `rerank-proxy`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import MissingExtraError
from .queue import QueuedSink

KNOWN = {"exporter", "endpoint", "headers", "service_name"}


@dataclass(frozen=True, slots=True)
class Timing:
    """What a trace needs beyond the record: wall-clock anchors and per-attempt perf_counter stamps."""

    start_ns: int
    started: float
    attempts: tuple[tuple[str, str, float, float, str | None, int | None], ...]
    guardrails: tuple[dict[str, Any], ...]


def _import_sdk() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise MissingExtraError("otel", "otel", "opentelemetry-sdk") from None
    return trace


def tracer_provider_from_settings(conf: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    unknown = set(conf) - KNOWN
    if unknown:
        raise ValueError(f"callback_settings.otel: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise MissingExtraError("otel", "otel", "opentelemetry-sdk") from None
    exporter_name = str(conf.get("exporter") or environ.get("OTEL_EXPORTER") or "otlp_http").lower()
    service = str(conf.get("service_name") or environ.get("OTEL_SERVICE_NAME") or "rerank-proxy")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name in ("otlp_http", "otlp", "http/protobuf"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise MissingExtraError("otel", "otel", "opentelemetry-exporter-otlp-proto-http") from None
        headers = conf.get("headers")
        if headers is None and environ.get("OTEL_HEADERS"):
            headers = dict(part.split("=", 1) for part in environ["OTEL_HEADERS"].split(",") if "=" in part)
        endpoint = str(conf.get("endpoint") or environ.get("OTEL_ENDPOINT") or "http://localhost:4318/v1/traces")
        exporter = OTLPSpanExporter(endpoint=endpoint, headers={str(k): str(v) for k, v in (headers or {}).items()})
    else:
        raise ValueError(f"callback_settings.otel.exporter: '{exporter_name}' is not one of otlp_http, console")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class OtelSink(QueuedSink):
    name = "otel"

    def __init__(self, tracer_provider: Any, *, owned: bool = False, **queueing: Any) -> None:
        super().__init__(**{"batch_size": 64, "flush_interval": 0.05, **queueing})
        trace = _import_sdk()
        self._trace = trace
        self._provider = tracer_provider
        self._owned = owned
        self._tracer = tracer_provider.get_tracer("rerank-proxy")

    def submit(self, record: dict[str, Any], call: Any) -> None:
        started_ns = int(call.started_at.timestamp() * 1_000_000_000)
        attempts = tuple(
            (deployment.id, deployment.provider.name, begun, ended,
             error.kind if error is not None else None, error.status if error is not None else None)
            for deployment, begun, ended, error in getattr(call.outcome, "timeline", ())
        )
        guardrails = tuple(g for g in call.guardrails if isinstance(g, dict))
        self.offer((record, Timing(started_ns, call.started, attempts, guardrails)))

    async def deliver(self, batch: list[tuple[dict[str, Any], Timing]]) -> None:
        for record, timing in batch:
            self._spans(record, timing)

    def _spans(self, record: dict[str, Any], timing: Timing) -> None:
        trace = self._trace
        at = _clock(timing)
        end_ns = timing.start_ns + int(record["latency_ms"] * 1_000_000)
        root = self._tracer.start_span("rerank", kind=trace.SpanKind.SERVER, start_time=timing.start_ns,
                                       attributes=_attributes(record))
        if record["status"] >= 400:
            root.set_status(trace.Status(trace.StatusCode.ERROR, record["error_class"] or ""))
        context = trace.set_span_in_context(root)
        first_attempt = at(timing.attempts[0][2]) if timing.attempts else end_ns
        for decision in timing.guardrails:
            name = str(decision.get("guardrail") or decision.get("name") or "guardrail")
            span = self._tracer.start_span(f"guardrail {name}", context=context, start_time=timing.start_ns,
                                           attributes=_scalars("guardrail", decision))
            span.end(end_time=first_attempt)
        for number, (deployment, provider, begun, ended, error, status) in enumerate(timing.attempts, 1):
            attributes: dict[str, Any] = {"rerank.attempt": number, "rerank.deployment": deployment,
                                          "rerank.provider": provider}
            if error is not None:
                attributes["error.type"] = error
                attributes["http.response.status_code"] = status or 0
            span = self._tracer.start_span(f"upstream {provider}", context=context, kind=trace.SpanKind.CLIENT,
                                           start_time=at(begun), attributes=attributes)
            if error is not None:
                span.set_status(trace.Status(trace.StatusCode.ERROR, error))
            span.end(end_time=at(ended))
        root.end(end_time=end_ns)

    async def close(self) -> None:
        """Export what the span processor still holds; an unreachable collector costs at most `drain_timeout`."""
        flush = self._provider.shutdown if self._owned else getattr(self._provider, "force_flush", None)
        if flush is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(flush), self.drain_timeout)
            except TimeoutError:
                pass


def _clock(timing: Timing) -> Any:
    def at(moment: float) -> int:
        return timing.start_ns + int((moment - timing.started) * 1_000_000_000)

    return at


_ROOT_FIELDS = ("request_id", "model", "served_model", "deployment", "provider", "key_alias", "end_user",
                "api_version", "documents", "attempts", "fallback_used", "cost", "search_units", "tokens",
                "overhead_ms", "upstream_ms", "error_class")


def _attributes(record: dict[str, Any]) -> dict[str, Any]:
    attributes = {f"rerank.{k}": record[k] for k in _ROOT_FIELDS if record.get(k) is not None}
    attributes["http.response.status_code"] = record["status"]
    return attributes


# Only these fields of a guardrail decision become attributes: anything else might quote the query.
_GUARDRAIL_FIELDS = ("guardrail", "name", "type", "action", "decision", "result", "mode", "error")


def _scalars(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{'name' if k == 'guardrail' else k}": values[k] for k in _GUARDRAIL_FIELDS
            if isinstance(values.get(k), str | int | float | bool)}
