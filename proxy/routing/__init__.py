"""Routing: which deployment serves a call, and what happens when it fails."""

from .health_checks import BackgroundHealthChecks, ProbeResult
from .picker import STRATEGIES
from .router import Router
from .trip import Outcome

__all__ = ["STRATEGIES", "BackgroundHealthChecks", "Outcome", "ProbeResult", "Router"]
