"""Alembic environment: runs on the connection `proxy.spend.db.migrate` passes in; never reads alembic.ini."""

from __future__ import annotations

from alembic import context

from proxy.spend.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through proxy.spend.db.migrate(engine); no URL is read from a config file"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
