"""Routing: which deployment serves a call, and what happens when it fails."""

from .router import Outcome, Router

__all__ = ["Outcome", "Router"]
