"""The watchdog that runs deadline callbacks (a slow body's cut-off, a FHIR read's drop):
callbacks run at their time, cancelled ones never, and the many deadlines that are kept
(nearly all of them) cost neither a scan nor memory."""

from __future__ import annotations

import threading
import time

from fhirdata.transport import WATCHDOG_SLACK, Watchdog


def test_a_callback_runs_at_its_time_and_a_cancelled_one_never() -> None:
    dog = Watchdog()
    ran: list[str] = []
    done = threading.Event()
    kept = dog.at(time.monotonic() + 0.05, lambda: ran.append("cancelled"))
    dog.at(time.monotonic() + 0.1, lambda: (ran.append("due"), done.set()))
    dog.cancel(kept)
    assert done.wait(5)
    assert ran == ["due"]
    assert dog.pending() == 0


def test_an_earlier_time_wakes_the_thread_waiting_for_a_later_one() -> None:
    dog = Watchdog()
    done = threading.Event()
    dog.at(time.monotonic() + 3600, lambda: None)  # the thread now waits an hour
    dog.at(time.monotonic() + 0.05, done.set)
    assert done.wait(5)  # not an hour
    assert dog.pending() == 1


def test_kept_deadlines_leave_nothing_behind() -> None:
    dog = Watchdog()
    far = time.monotonic() + 3600
    for _ in range(20 * WATCHDOG_SLACK):
        dog.cancel(dog.at(far, lambda: None))
    assert dog.pending() == 0
    assert len(dog._heap) <= WATCHDOG_SLACK + 1  # cancelled entries are dropped, not kept


def test_cancelling_twice_or_after_the_run_is_harmless() -> None:
    dog = Watchdog()
    done = threading.Event()
    ident = dog.at(time.monotonic(), done.set)
    assert done.wait(5)
    dog.cancel(ident)
    dog.cancel(ident)
    assert dog.pending() == 0
