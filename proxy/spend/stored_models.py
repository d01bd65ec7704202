"""`StoredModels`: deployments added through the admin API (`store_model_in_db`), and their revision.

Every change raises `config_revisions["models"]` in its own transaction, so a process that polls the one
integer learns, at the cost of one indexed read, whether any replica changed the stored models. The
`litellm_params` column holds whatever token the caller gives (the API encrypts it: `secret_box.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from .tables import config_revisions, proxy_models
from .transactions import Transactions, utc_now

MODELS = "models"
CONFIG = "config"
"""Raised by a successful `/config/reload`, so every process re-reads its YAML file."""


@dataclass(frozen=True, slots=True)
class StoredModel:
    model_id: str
    model_name: str
    litellm_params: str
    """The encrypted JSON of the deployment's `litellm_params`."""
    model_info: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class StoredModels(Transactions):
    def config_revisions(self) -> dict[str, int]:
        """{"models": n, "config": m}: what a process compares with the revisions it last loaded."""
        with self._read() as connection:
            rows = connection.execute(select(config_revisions.c.name, config_revisions.c.revision)
                                      .where(config_revisions.c.name.in_((MODELS, CONFIG)))).all()
        return {MODELS: 0, CONFIG: 0, **{name: int(revision) for name, revision in rows}}

    def list_models(self) -> tuple[int, list[StoredModel]]:
        """The models revision and every stored model, read in one transaction (so the pair is consistent)."""
        with self._read() as connection:
            revision = _revision(connection)
            rows = connection.execute(select(proxy_models).order_by(proxy_models.c.created_at)).all()
        return revision, [StoredModel(**row._mapping) for row in rows]

    def bump_revision(self, name: str) -> None:
        with self._write() as connection:
            bump(connection, self._insert, name)

    def save_model(self, model_id: str, model_name: str, litellm_params: str, model_info: Mapping[str, Any],
                   *, now: datetime | None = None) -> StoredModel:
        """Insert or replace one model (its `created_at` is kept on replace)."""
        now = now or utc_now()
        values = {"model_name": model_name, "litellm_params": litellm_params, "model_info": dict(model_info),
                  "updated_at": now}
        with self._write() as connection:
            done = connection.execute(update(proxy_models).where(proxy_models.c.model_id == model_id)
                                      .values(**values)).rowcount
            if not done:
                connection.execute(proxy_models.insert().values(model_id=model_id, created_at=now, **values))
            bump(connection, self._insert, MODELS)
            row = connection.execute(select(proxy_models).where(proxy_models.c.model_id == model_id)).one()
        return StoredModel(**row._mapping)

    def delete_model(self, model_id: str) -> bool:
        with self._write() as connection:
            gone = connection.execute(delete(proxy_models).where(proxy_models.c.model_id == model_id)).rowcount
            if gone:
                bump(connection, self._insert, MODELS)
        return bool(gone)


def _revision(connection: Connection) -> int:
    value = connection.execute(select(config_revisions.c.revision)
                               .where(config_revisions.c.name == MODELS)).scalar_one_or_none()
    return int(value or 0)


def bump(connection: Connection, insert: Any, name: str) -> None:
    """Raise revision `name` by one (creating it), holding its row lock until the transaction ends."""
    statement = insert(config_revisions).values(name=name, revision=1)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[config_revisions.c.name],
        set_={"revision": config_revisions.c.revision + 1}))
