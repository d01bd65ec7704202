"""Everything a running server owns, built in the lifespan and reached through `request.app.state`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..admission import BodyBudget
from ..auth.caller import Authenticator
from ..config_loading import Settings
from ..engine import Engine
from ..governance import Governance
from ..live_models import LiveModels
from ..observability import Telemetry
from ..record_sync import RecordSync
from ..routing import Router
from ..spend.gate import DatabaseGate
from ..spend.store import Store
from ..spend.writer import SpendWriter


@dataclass
class Runtime:
    settings: Settings
    store: Store
    writer: SpendWriter
    authenticator: Authenticator
    router: Router
    engine: Engine
    governance: Governance
    telemetry: Telemetry
    gate: DatabaseGate
    models: LiveModels | None = None
    """Run-time model changes and config reloads (None in servers built without the lifespan)."""
    record_sync: RecordSync | None = None
    """Evicts cached keys, end-users and tags that admin changes touched, on every process (None without the
    lifespan)."""
    max_request_bytes: int = field(init=False)
    """`general_settings.max_request_size_mb` in bytes, computed once rather than per request."""

    body_budget: BodyBudget = field(init=False)
    """`general_settings.max_request_body_memory_mb`: request bytes the /rerank calls in flight may hold."""

    async def records_changed(self) -> None:
        """An admin change touched keys (or their team or user), end-users or tags: evict them from this
        process's caches now (other processes follow within `model_sync_interval`)."""
        if self.record_sync is not None:
            await self.record_sync.after_change()

    def __post_init__(self) -> None:
        self.max_request_bytes = int(self.settings.general.max_request_size_mb * 1024 * 1024)
        self.body_budget = BodyBudget(int(self.settings.general.max_request_body_memory_mb * 1024 * 1024))
