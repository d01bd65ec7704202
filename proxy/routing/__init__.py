"""Routing: which deployment serves a call, and what happens when it fails."""

from .picker import STRATEGIES
from .probe import BackgroundHealthChecks, ProbeResult
from .router import Router
from .trip import Outcome

__all__ = ["STRATEGIES", "BackgroundHealthChecks", "Outcome", "ProbeResult", "Router"]
