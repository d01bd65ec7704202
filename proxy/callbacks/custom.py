"""A user's own callback, named by import path: `callbacks: ["mypkg.mod:MyLogger"]`.

The object (a class, instantiated without arguments, or an instance) may define `log_success_event(event)`
and/or `log_failure_event(event)`, sync or async. Events are delivered one at a time, in order, from a
background task: async methods are awaited there (bounded by `timeout`), sync ones run in a worker thread,
so a slow or blocking callback never holds up a request. Each call gets its own copy of the event.
A module that is not importable is also looked for next to the config file (as LiteLLM does).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from .queue import QueuedSink


class CallbackImportError(ValueError):
    pass


def load_object(path: str, config_dir: Path | None = None) -> Any:
    """`pkg.mod:Name` or `pkg.mod.Name` → the object; a class is instantiated without arguments."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise CallbackImportError(f"callback '{path}': expected 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if config_dir is None or exc.name != module_name.split(".")[0]:
            raise CallbackImportError(f"callback '{path}': cannot import {module_name} ({exc})") from None
        if str(config_dir) not in sys.path:
            sys.path.append(str(config_dir))
        try:
            module = importlib.import_module(module_name)
        except ImportError as again:
            raise CallbackImportError(f"callback '{path}': cannot import {module_name} ({again})") from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise CallbackImportError(f"callback '{path}': {module_name} has no attribute {attr}") from None
    if inspect.isclass(target):
        target = target()
    if not (callable(getattr(target, "log_success_event", None)) or
            callable(getattr(target, "log_failure_event", None))):
        raise CallbackImportError(f"callback '{path}': defines neither log_success_event nor log_failure_event")
    return target


class CustomSink(QueuedSink):
    def __init__(self, target: Any, name: str, *, timeout: float = 30.0, **queueing: Any) -> None:
        super().__init__(**queueing)
        self.name = name
        self.timeout = timeout
        self._success = getattr(target, "log_success_event", None)
        self._failure = getattr(target, "log_failure_event", None)

    async def deliver(self, batch: list[dict[str, Any]]) -> None:
        for event in batch:
            method = self._success if event["status"] < 400 else self._failure
            if not callable(method):
                continue
            if inspect.iscoroutinefunction(method):
                await asyncio.wait_for(method(dict(event)), self.timeout)
            else:
                await asyncio.to_thread(method, dict(event))
