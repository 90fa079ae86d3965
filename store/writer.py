"""The audit trail's background writer: the hook hands over a record and returns at once.

One daemon thread per process takes whatever has queued up (up to ``batch_size`` records) and
inserts it in one transaction. Woken by a first record, it waits up to ``batch_wait_s`` for
more (or a full batch, a ``flush`` or ``close``), so that under load a transaction carries
many requests' records rather than one: a transaction per request cost the service a sixth
of its CPU. A failed write is retried with back-off, never dropped: a
database that is down or locked delays records, it does not lose them. Only a record the
database rejects on its own (it fails again when written alone) is dropped, and counted.

``close()`` (also run at interpreter exit) writes everything queued before returning. After a
fork (gunicorn's preloaded app) the child starts with an empty queue and a fresh pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError, TimeoutError

from store import repository
from store.records import AccessRecord, AuditRecord, CardRecord, RefusalRecord

Record = AuditRecord | AccessRecord | RefusalRecord

log = logging.getLogger("iport_cds.store")

BATCH_WAIT_S = 0.05  # how long a first record waits for others to share its transaction
_TRANSIENT = (OperationalError, DisconnectionError, TimeoutError)
_writers: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class AuditWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 500,
        batch_wait_s: float = BATCH_WAIT_S,
        retry_max_s: float = 5.0,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_every_s: float = 6 * 3600.0,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.retry_max_s = retry_max_s
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self._init_state()
        _writers.add(self)

    def _init_state(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Record] = deque()
        self._pending_cards: dict[str, tuple[str, CardRecord]] = {}
        self._thread: threading.Thread | None = None
        self._closing = False
        self._flushing = 0  # callers of flush() waiting: write now, do not wait for more
        self._in_flight = 0
        self.submitted = 0
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._next_housekeeping = 0.0

    def _reset_after_fork(self) -> None:
        self.engine.dispose(close=False)  # the parent's connections stay the parent's
        self._init_state()

    # -- producer side (request threads) ------------------------------------------------------
    def submit(self, record: Record) -> None:
        """Queue one record; never blocks on the database, never raises for it."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the audit writer is closed")
            self._queue.append(record)
            for card in _cards(record):
                self._pending_cards[card.uuid] = (record.service_id, card)
            self.submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="iport-cds-audit-writer", daemon=True
                )
                self._thread.start()
            if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
                self._cond.notify_all()  # the writer waits for a first record or a full batch

    def pending_card(self, card_uuid: str) -> tuple[str, CardRecord] | None:
        """A card issued by this process whose record is not written yet."""
        with self._cond:
            return self._pending_cards.get(card_uuid)

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every record submitted so far is written (or dropped). False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.submitted
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self.written + self.dropped < target:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread. Idempotent."""
        with self._cond:
            if self._closing and self._thread is None:
                return
            self._closing = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("audit writer: %d record(s) still unwritten at shutdown", self.backlog)
        with self._cond:
            self._thread = None

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait(self._until_housekeeping())
                    if not self._queue and not self._closing:
                        break
                if not self._queue and self._closing:
                    return
                self._gather_batch()
                n = min(len(self._queue), self.batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
            if batch:
                written, dropped = self._write(batch)
                with self._cond:
                    for record in batch:
                        for card in _cards(record):
                            self._pending_cards.pop(card.uuid, None)
                    self.written += written
                    self.dropped += dropped
                    self._in_flight = 0
                    self._cond.notify_all()
            self._maybe_housekeeping()

    def _gather_batch(self) -> None:
        """With the lock held and a record queued: wait up to ``batch_wait_s`` for more."""
        until = time.monotonic() + self.batch_wait_s
        while (
            self._queue
            and len(self._queue) < self.batch_size
            and not self._closing
            and not self._flushing
        ):
            left = until - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _until_housekeeping(self) -> float:
        if self.housekeeping is None:
            return 3600.0
        return max(self._next_housekeeping - time.monotonic(), 0.01)

    def _maybe_housekeeping(self) -> None:
        if self.housekeeping is None or time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + self.housekeeping_every_s
        try:
            self.housekeeping()
        except Exception as exc:
            log.error("audit housekeeping failed: %s", type(exc).__name__)

    def _write(self, batch: Sequence[Record]) -> tuple[int, int]:
        """(written, dropped). Retries transient failures until written."""
        delay = 0.05
        while True:
            try:
                self._insert(batch)
                return len(batch), 0
            except _TRANSIENT as exc:
                self.failures += 1
                log.warning(
                    "audit write failed, retrying: %s (%d queued)",
                    type(exc).__name__,
                    len(self._queue) + len(batch),
                )
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            except Exception as exc:  # the database (or a bug) rejects this batch as such
                self.failures += 1
                if len(batch) == 1:
                    log.error("audit record rejected by the database: %s", type(exc).__name__)
                    return 0, 1
                written = dropped = 0
                for record in batch:  # find the one the database rejects; keep the rest
                    w, d = self._write([record])
                    written, dropped = written + w, dropped + d
                return written, dropped

    def _insert(self, batch: Sequence[Record]) -> None:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            repository.insert_audit(conn, [r for r in batch if isinstance(r, AuditRecord)])
            repository.insert_access(conn, [r for r in batch if isinstance(r, AccessRecord)])
            repository.insert_refusals(conn, [r for r in batch if isinstance(r, RefusalRecord)])


def _cards(record: Record) -> tuple[CardRecord, ...]:
    return record.cards if isinstance(record, AuditRecord) else ()
