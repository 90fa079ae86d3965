"""Write a new migration from the models: ``python -m store.migrations "what changed"``.

Autogenerates against a scratch SQLite database brought to the current head, into
``store/migrations/versions/``. Read and tidy the result, then run the storage tests (they
check the migrations build exactly the models, on SQLite and PostgreSQL).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from store.db import alembic_config, make_engine, migrate


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.sqlite3'}")
        try:
            migrate(engine)
            cfg = alembic_config()
            with engine.connect() as conn, conn.begin():
                cfg.attributes["connection"] = conn
                command.revision(cfg, message=argv[0], autogenerate=True)
        finally:
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
