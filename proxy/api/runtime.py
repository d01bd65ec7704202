"""Everything a running server owns, built in the lifespan and reached through `request.app.state`."""

from __future__ import annotations

from dataclasses import dataclass
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
