"""Routing: which deployment serves a call, and what happens when it fails."""

from .health_checks import BackgroundHealthChecks, ProbeResult
from .outcome import Outcome
from .picker import STRATEGIES
from .router import Router

__all__ = ["STRATEGIES", "BackgroundHealthChecks", "Outcome", "ProbeResult", "Router"]
