"""`LiveModels`: the model list changes while serving, with no restart and no failed request.

Three ways in: the admin API (`/model/new`, `/model/update`, `/model/delete`, stored in the database when
`store_model_in_db` is on), a config reload (`SIGHUP` or `POST /config/reload` re-reads the YAML), and other
processes (every `model_sync_interval` seconds each process reads two revision counters, so a change made on
one worker or replica reaches all of them within that bound).

Every change is validated whole first: the candidate config (the YAML plus the stored models) is parsed and
a router built from it; only then is it swapped in, in one assignment (`Router.adopt`). A bad file or model
changes nothing. Requests in flight finish on the plan they started with; router state (cooldowns, latency,
rpm counts) is keyed by deployment id, so it carries over for every id that did not change. YAML models are
authoritative for their ids: a stored model with the id of a YAML one is skipped (with a warning), and the
API refuses to add, change or delete a YAML model.

What a reload does not change (it needs a restart, and the answer says so): `general_settings`, the logging
callbacks and other `litellm_settings` besides fallbacks and retries, and the Redis settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .config_loading import Settings, parse_config, read_config
from .errors import InvalidRequestError, ModelNotFoundError, StoreUnavailableError
from .periodic import repeat
from .routing import Router
from .secret_box import SecretBox, public_params
from .settings import ConfigError
from .spend.gate import Deadline
from .spend.stored_models import CONFIG, MODELS, StoredModel

log = logging.getLogger("proxy.models")

T = TypeVar("T")

DB_DEADLINE = 2.0
_bounded = Deadline(DB_DEADLINE)  # admin calls: one each, in parallel
"""Seconds any database call of this module may take before it is given up (and retried at the next sync)."""

LIVE_LITELLM_SETTINGS = frozenset({"fallbacks", "default_fallbacks", "num_retries"})
REDIS_ROUTER_SETTINGS = frozenset({"redis_url", "redis_host", "redis_port", "redis_password", "redis_prefix",
                                   "redis_refresh_interval"})


@dataclass
class Change:
    """What one reload or model change did."""

    aliases: list[str]
    restart_required: list[str] = field(default_factory=list)


class LiveModels:
    def __init__(self, settings: Settings, *, store: Any, router: Router, build_router: Callable[..., Router],
                 on_change: Callable[[Settings], None]):
        self.settings = settings
        """What is serving now: the YAML file plus the stored models."""
        self._store = store
        self._router = router
        self._build_router = build_router
        self._on_change = on_change
        self._raw = settings.raw
        self._box = SecretBox.from_environ(settings.environ, settings.master_key)
        self._stored: dict[str, dict[str, Any]] = {}
        """Stored models by id, decrypted: {"model_name", "litellm_params", "model_info"}."""
        self._revisions = {MODELS: -1, CONFIG: -1}
        self._poll = Deadline(DB_DEADLINE, serial=True)  # the sync: a hung database holds one thread
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def storing(self) -> bool:
        return self.settings.general.store_model_in_db

    def is_stored(self, deployment_id: str) -> bool:
        return deployment_id in self._stored

    def shown(self, model_id: str) -> dict[str, Any] | None:
        """A stored model as the API and the audit log may show it: no secrets."""
        entry = self._stored.get(model_id)
        if entry is None:
            return None
        return {**entry, "litellm_params": public_params(entry["litellm_params"])}

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the stored models before serving (a database that does not answer in time is retried by
        the background sync), then watch the revisions and SIGHUP."""
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001 - serving the YAML models beats not starting
            log.warning("stored models not loaded yet (%s); serving the config file's models", _reason(exc))
        self._task = asyncio.create_task(self._watch(), name="live-models")
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        except (RuntimeError, ValueError, NotImplementedError):
            pass  # not the main thread (an embedded server): POST /config/reload still works

    async def stop(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (RuntimeError, ValueError, NotImplementedError):
            pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _on_sighup(self) -> None:
        async def reload() -> None:
            try:
                change = await self.reload_file()
            except ConfigError as exc:
                log.error("SIGHUP: config not reloaded, still serving the previous one: %s", exc)
            else:
                log.warning("SIGHUP: config reloaded; serving %s%s", ", ".join(change.aliases),
                            _restart_note(change.restart_required))

        asyncio.get_running_loop().create_task(reload())

    async def _watch(self) -> None:
        await repeat(self.settings.general.model_sync_interval, self.sync, log,
                     failing="model sync failed (%s); serving the current models until it works",
                     recovered="model sync works again")

    # -- sync with other processes ---------------------------------------------------------------------
    async def sync(self) -> None:
        """Apply changes made by other processes: stored models, and config reloads asked of any of them."""
        revisions = await self._poll(self._store.config_revisions)
        if revisions == self._revisions:
            return
        async with self._lock:
            raw, stored = self._raw, self._stored
            if revisions[CONFIG] != self._revisions[CONFIG] and self._revisions[CONFIG] >= 0:
                raw = read_config(self.settings.source)
            if self.storing and revisions[MODELS] != self._revisions[MODELS]:
                revision, rows = await self._poll(self._store.list_models)
                revisions = {**revisions, MODELS: revision}
                stored = self._open(rows)
            if raw is not self._raw or stored is not self._stored:
                self._apply(*self._candidate(raw, stored), raw, stored)
            self._revisions = revisions

    def _open(self, rows: list[StoredModel]) -> dict[str, dict[str, Any]]:
        stored: dict[str, dict[str, Any]] = {}
        for row in rows:
            try:
                params = self._sealer().open(row.litellm_params)
            except ValueError as exc:
                log.error("stored model %s (%s) skipped: %s", row.model_id, row.model_name, exc)
                continue
            stored[row.model_id] = {"model_name": row.model_name, "litellm_params": params,
                                    "model_info": {**row.model_info, "id": row.model_id}}
        return stored

    # -- config reload ---------------------------------------------------------------------------------
    async def reload_file(self) -> Change:
        """Re-read the YAML file and swap it in whole, or raise ConfigError and change nothing. Other
        workers and replicas follow at their next sync."""
        async with self._lock:
            raw = read_config(self.settings.source)
            change = self._apply(*self._candidate(raw, self._stored), raw, self._stored)
        try:
            await _bounded(self._store.bump_revision, CONFIG)
        except Exception as exc:  # noqa: BLE001 - this process has it; the others need SIGHUP or a retry
            log.warning("config reloaded here, but other processes were not told (%s)", _reason(exc))
        else:
            self._revisions[CONFIG] += 1
        return change

    # -- the admin API ---------------------------------------------------------------------------------
    async def add(self, model_name: str, litellm_params: dict[str, Any], model_info: dict[str, Any]
                  ) -> StoredModel:
        self._require_storage()
        model_id = str(model_info.get("id") or uuid.uuid4().hex)
        async with self._lock:
            self._refuse_config_model(model_id, "add")
            if model_id in self._stored:
                raise InvalidRequestError(f"a model with id '{model_id}' exists; change it with /model/update")
            entry = {"model_name": model_name, "litellm_params": litellm_params,
                     "model_info": {**model_info, "id": model_id}}
            return await self._store_entry(model_id, entry)

    async def update(self, model_id: str, model_name: str | None, litellm_params: dict[str, Any] | None,
                     model_info: dict[str, Any] | None) -> StoredModel:
        """Change a stored model: `litellm_params` and `model_info` are merged onto what it has."""
        self._require_storage()
        async with self._lock:
            self._refuse_config_model(model_id, "change")
            current = self._stored.get(model_id)
            if current is None:
                raise ModelNotFoundError(f"model id '{model_id}' not found")
            entry = {"model_name": model_name or current["model_name"],
                     "litellm_params": {**current["litellm_params"], **(litellm_params or {})},
                     "model_info": {**current["model_info"], **(model_info or {}), "id": model_id}}
            return await self._store_entry(model_id, entry)

    async def delete(self, model_id: str) -> None:
        self._require_storage()
        async with self._lock:
            self._refuse_config_model(model_id, "delete")
            if model_id not in self._stored:
                raise ModelNotFoundError(f"model id '{model_id}' not found")
            stored = {k: v for k, v in self._stored.items() if k != model_id}
            candidate = self._candidate(self._raw, stored, api=True)
            if not await _bounded(self._store.delete_model, model_id):
                raise ModelNotFoundError(f"model id '{model_id}' not found")
            self._apply(*candidate, self._raw, stored)

    async def _store_entry(self, model_id: str, entry: dict[str, Any]) -> StoredModel:
        stored = {**self._stored, model_id: entry}
        candidate = self._candidate(self._raw, stored, api=True)  # refuses a model that would not load
        info = {k: v for k, v in entry["model_info"].items() if k != "id"}
        row = await _bounded(self._store.save_model, model_id, entry["model_name"],
                             self._sealer().seal(entry["litellm_params"]), info)
        self._apply(*candidate, self._raw, stored)
        return row

    def _require_storage(self) -> None:
        if not self.storing:
            raise InvalidRequestError("models can be added, changed and deleted at run time only with "
                                      "general_settings.store_model_in_db: true (or edit the config file and "
                                      "reload it: SIGHUP or POST /config/reload)")

    def _refuse_config_model(self, model_id: str, verb: str) -> None:
        if model_id in self._yaml_ids(self._raw):
            raise InvalidRequestError(f"model id '{model_id}' is defined in the config file: {verb} it there, "
                                      "then reload the config")

    def _sealer(self) -> SecretBox:
        if self._box is None:  # parse_config refuses store_model_in_db without a key
            raise StoreUnavailableError("no salt key to encrypt stored models")
        return self._box

    # -- building and swapping -------------------------------------------------------------------------
    def _yaml_ids(self, raw: Any) -> set[str]:
        settings = parse_config(raw, self.settings.environ, source=self.settings.source)
        return {d.id for deps in settings.aliases.values() for d in deps}

    def _candidate(self, raw: Any, stored: Mapping[str, dict[str, Any]], *, api: bool = False
                   ) -> tuple[Settings, Router]:
        """The settings for `raw` plus `stored` and a router built from them, validated whole; ConfigError
        (InvalidRequestError for an API change) when they would not load."""
        try:
            yaml_ids = self._yaml_ids(raw)
            extra = []
            for model_id, entry in stored.items():
                if model_id in yaml_ids:
                    log.warning("stored model %s skipped: the config file defines that id", model_id)
                else:
                    extra.append(entry)
            merged = {**(raw or {}), "model_list": [*((raw or {}).get("model_list") or []), *extra]}
            settings = parse_config(merged, self.settings.environ, source=self.settings.source)
            try:
                router = self._build_router(settings, state=self._router.state)
            except ValueError as exc:
                raise ConfigError([str(exc)]) from None
            return settings, router
        except ConfigError as exc:
            if api:
                raise InvalidRequestError("model refused: " + "; ".join(exc.problems)) from None
            raise

    def _apply(self, settings: Settings, router: Router, raw: Any, stored: dict[str, dict[str, Any]]) -> Change:
        restart = restart_required(self.settings, settings)
        self._router.adopt(router)
        self._on_change(settings)
        self.settings, self._raw, self._stored = settings, raw, stored
        if restart:
            log.warning("config change needs a restart to take effect: %s", ", ".join(restart))
        return Change(aliases=sorted(settings.aliases), restart_required=restart)


def restart_required(old: Settings, new: Settings) -> list[str]:
    """The settings that differ between `old` and `new` but only take effect at a restart."""
    changed = [f"general_settings.{name}" for name in _diff(old.general, new.general)]
    changed += [f"litellm_settings.{name}" for name in _diff(old.config.litellm_settings,
                                                           new.config.litellm_settings)
                if name not in LIVE_LITELLM_SETTINGS]
    changed += [f"router_settings.{name}" for name in _diff(old.router, new.router) if name in REDIS_ROUTER_SETTINGS]
    return changed


def _diff(old: Any, new: Any) -> list[str]:
    before, after = old.model_dump(), new.model_dump()
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))




def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or type(exc).__name__


def _restart_note(names: list[str]) -> str:
    return f" (restart needed for: {', '.join(names)})" if names else ""
