"""Engines and migrations: SQLite (embedded default, WAL mode) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL

log = logging.getLogger("iport_cds.store")

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_MIGRATION_LOCK = 0x1B0_27CD5  # pg_advisory_lock key: one migrator at a time


def normalise_url(url: str) -> URL:
    """``postgres://`` and ``postgresql://`` use psycopg 3 (the driver this package ships)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database '{parsed.get_backend_name()}'")
    return parsed


SQLITE_MMAP_BYTES = 256 * 1024 * 1024


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, sqlite_busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """An engine for ``url``; on SQLite, a write waits up to ``sqlite_busy_timeout_s`` for
    another writer's lock."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, sqlite_busy_timeout_s)
    return create_engine(
        parsed,
        pool_size=8,
        max_overflow=8,
        pool_pre_ping=True,
        pool_recycle=1800,
        # A database host that drops packets must not hold a worker (or a readiness probe).
        connect_args={"connect_timeout": 3},
    )


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    if url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database would lose every record; give a file")
    Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_size=8,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe in WAL
        cur.execute("PRAGMA foreign_keys=ON")
        # Pages read through memory mapping, not a read() each: an audit trail past SQLite's
        # 2 MB page cache otherwise costs a hook more CPU the larger it grows.
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        # Writers take the lock up front (BEGIN IMMEDIATE) so that they wait for each other
        # with the busy timeout instead of failing on a read-to-write lock upgrade.
        mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, lock_dir: Path | None = None) -> None:
    """Bring the schema to the latest revision; safe when several processes start at once."""
    cfg = alembic_config()
    if engine.dialect.name == "sqlite":
        lock_path = (lock_dir or Path(str(engine.url.database)).parent) / ".iport-cds-migrate.lock"
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _upgrade(engine, cfg)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        conn.commit()
        try:
            _upgrade(engine, cfg)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()


def _upgrade(engine: Engine, cfg: Config) -> None:
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
