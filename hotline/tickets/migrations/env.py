"""Alembic environment of the ticket store.

Run programmatically by hotline.tickets.database.upgrade_to_head, which hands over an open
connection (config.attributes["connection"]) already inside the transaction that holds the
migration lock. Without one (e.g. `alembic -x` tooling or offline `--sql` output for a DBA), the
URL in the config's `sqlalchemy.url` is used. Logging is left to the composition root.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from hotline.tickets.schema import metadata

config = context.config


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; later migrations use batch operations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _migrate(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection and no sqlalchemy.url in the Alembic config")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _migrate(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
