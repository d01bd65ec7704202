"""Routing: which deployment serves a call, and what happens when it fails."""

from .picker import STRATEGIES
from .probe import BackgroundHealthChecks, ProbeResult
from .router import Outcome, Router

__all__ = ["STRATEGIES", "BackgroundHealthChecks", "Outcome", "ProbeResult", "Router"]
