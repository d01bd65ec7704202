"""Everything a running server owns, built in the lifespan and reached through `request.app.state`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..auth.caller import Authenticator
from ..engine import Engine
from ..routing import Router
from ..settings import Settings


@dataclass
class Runtime:
    settings: Settings
    store: Any
    writer: Any
    authenticator: Authenticator
    router: Router
    engine: Engine
    extras: dict[str, Any]
    max_request_bytes: int = field(init=False)
    """`general_settings.max_request_size_mb` in bytes, computed once rather than per request."""

    def __post_init__(self) -> None:
        self.max_request_bytes = int(self.settings.general.max_request_size_mb * 1024 * 1024)
