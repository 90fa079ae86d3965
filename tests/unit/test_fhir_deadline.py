"""The FHIR deadline bounds the whole exchange, and one slow FHIR server cannot take another's
capacity: real sockets on loopback, a server that drips its answer a byte at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fhirdata import FetchSettings, FhirClient, new_session
from fhirdata.client import FhirTimeout
from fhirdata.transport import OriginExecutors
from tests.deploy.fhir_stub import SlowFhirServer

QUERIES = {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}


def client(base: str, executors: OriginExecutors, deadline_s: float, **kw: object) -> FhirClient:
    return FhirClient(
        base,
        session=kw.pop("session", None) or new_session(4),  # type: ignore[arg-type]
        executor=executors.for_url(base),
        settings=FetchSettings(deadline_s=deadline_s, read_timeout_s=3.0),
    )


def test_a_dripping_server_is_cut_off_at_the_deadline_and_its_connections_dropped() -> None:
    executors = OriginExecutors(4)
    with SlowFhirServer(drip_s=0.05) as drip:
        fhir = client(drip.base_url, executors, deadline_s=0.8)
        started = time.monotonic()
        with pytest.raises(FhirTimeout, match="deadline"):
            fhir.fetch_all(QUERIES)
        assert time.monotonic() - started < 0.8 + 0.3
        # The reads blocked in recv were released: the connections are closed, not left to
        # drip on (which a per-read socket timeout would never notice).
        end = time.monotonic() + 3
        while drip.dropped < 2 and time.monotonic() < end:
            time.sleep(0.05)
        assert drip.dropped == 2
        # ... and the executor's threads are free again at once.
        free = executors.for_url(drip.base_url).submit(lambda: "free")
        assert free.result(timeout=0.5) == "free"


def test_a_slow_server_does_not_hold_the_capacity_of_another() -> None:
    executors = OriginExecutors(2)  # two reads at a time per FHIR server
    session = new_session(2)
    with SlowFhirServer(drip_s=0.2) as slow, SlowFhirServer() as healthy:
        errors: list[BaseException] = []

        def slow_hook() -> None:
            try:
                client(slow.base_url, executors, 2.0, session=session).fetch_all(QUERIES)
            except FhirTimeout as exc:
                errors.append(exc)

        hogs = [threading.Thread(target=slow_hook) for _ in range(4)]
        for t in hogs:
            t.start()
        time.sleep(0.3)  # the slow server's threads and connections are all taken now
        started = time.monotonic()
        result = client(healthy.base_url, executors, 2.0, session=session).fetch_all(QUERIES)
        assert time.monotonic() - started < 0.5
        assert result.resources["patient"][0]["id"] == "p1"
        for t in hogs:
            t.join(5)
        assert len(errors) == 4  # every slow hook ended at its deadline


def test_origins_beyond_the_bound_share_one_executor() -> None:
    executors = OriginExecutors(1, max_origins=2)
    a = executors.for_url("http://127.0.0.1:1/fhir")
    assert executors.for_url("http://127.0.0.1:1/other-base") is a  # same origin
    b = executors.for_url("http://127.0.0.1:2/fhir")
    c = executors.for_url("http://127.0.0.1:3/fhir")
    assert len({id(a), id(b), id(c)}) == 3
    assert executors.for_url("http://127.0.0.1:4/fhir") is c
    assert isinstance(c, ThreadPoolExecutor)
