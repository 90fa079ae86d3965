"""Alembic environment: run by store.migrate() with a live connection, or by the alembic CLI
with ``-x url=...`` (for writing new revisions: see docs/feedback-and-audit.md)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from store.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # pragma: no cover - only the alembic CLI comes here
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(str(url))
    with engine.connect() as conn, conn.begin():
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
