"""Operations: Prometheus metrics, the JSON request log and logging callbacks, fed by one engine observer."""

from .logs import RequestLogMiddleware, configure_logging
from .metrics import Metrics
from .telemetry import Telemetry

__all__ = ["Metrics", "RequestLogMiddleware", "Telemetry", "configure_logging"]
