"""The per-FHIR-origin circuit breaker as a state machine, on a clock the test moves."""

from __future__ import annotations

import pytest

from fhirdata.breaker import Breaker, FhirNotAnswering, OriginBreakers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        breaker.record(breaker.admit(), answered=False)


def test_it_opens_after_the_failures_in_a_row_and_refuses_until_the_cool_off_ends() -> None:
    clock = Clock()
    breaker = Breaker(failures=3, cool_off_s=30, clock=clock)
    _fail(breaker, 2)
    breaker.record(breaker.admit(), answered=True)  # an answer: the count starts again
    _fail(breaker, 2)
    assert breaker.state == "closed"
    _fail(breaker, 1)
    assert breaker.state == "open"
    with pytest.raises(FhirNotAnswering) as refused:
        breaker.admit()
    assert refused.value.retry_after_s == 30
    clock.now += 20
    assert breaker.refusing() == 10


def test_after_the_cool_off_one_trial_goes_and_decides() -> None:
    clock = Clock()
    breaker = Breaker(failures=1, cool_off_s=30, clock=clock)
    _fail(breaker, 1)
    clock.now += 30
    assert breaker.refusing() is None
    trial = breaker.admit()
    assert trial.trial
    with pytest.raises(FhirNotAnswering):
        breaker.admit()  # one trial at a time
    breaker.record(trial, answered=False)
    assert breaker.state == "open"  # for another cool-off
    clock.now += 30
    trial = breaker.admit()
    breaker.record(trial, answered=True)
    assert breaker.state == "closed"
    assert not breaker.admit().trial


def test_a_trial_that_read_nothing_gives_the_trial_back() -> None:
    clock = Clock()
    breaker = Breaker(failures=1, cool_off_s=5, clock=clock)
    _fail(breaker, 1)
    clock.now += 5
    breaker.record(breaker.admit(), answered=None)
    assert breaker.admit().trial


def test_zero_failures_is_no_breaker() -> None:
    breaker = Breaker(failures=0, cool_off_s=30, clock=Clock())
    _fail(breaker, 10)
    assert breaker.state == "closed"


def test_each_origin_has_its_own_breaker() -> None:
    breakers = OriginBreakers(failures=1, cool_off_s=30, clock=Clock())
    _fail(breakers.for_url("https://FHIR.example.nhs.uk/r4"), 1)
    assert breakers.for_url("https://fhir.example.nhs.uk/other").state == "open"
    assert breakers.for_url("https://fhir.other.nhs.uk/r4").state == "closed"
    with pytest.raises(ValueError, match="FHIR_BREAKER"):
        OriginBreakers(failures=-1, cool_off_s=30)


def test_two_tenants_on_one_origin_have_their_own_breakers() -> None:
    breakers = OriginBreakers(failures=1, cool_off_s=30, clock=Clock())
    _fail(breakers.for_url("https://engine.example.nhs.uk/trust-a", ("engine", "trust-a")), 1)
    assert (
        breakers.for_url("https://engine.example.nhs.uk/x", ("engine", "trust-a")).state == "open"
    )
    assert breakers.for_url(
        "https://engine.example.nhs.uk/trust-b", ("engine", "trust-b")
    ).state == ("closed")
