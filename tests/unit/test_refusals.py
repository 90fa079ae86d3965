"""The limit on refused calls per client (service/refusals.py): a burst, a refill rate, an
address's own larger bucket, a bounded memory; and the issuer read from an unchecked token."""

from __future__ import annotations

import base64
import json

import pytest

from service.refusals import RefusalLimiter, claimed_issuer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, burst: int = 3, per_minute: float = 6, **kw: int) -> RefusalLimiter:
    return RefusalLimiter(burst, per_minute, clock=clock, **kw)


def test_a_client_is_held_back_after_its_burst_until_its_bucket_refills() -> None:
    clock = Clock()
    lim = limiter(clock)  # 3 at once, then one every 10 s
    for _ in range(3):
        assert lim.retry_after("198.51.100.1", "https://a") is None
        lim.refused("198.51.100.1", "https://a")
    assert lim.retry_after("198.51.100.1", "https://a") == 10
    clock.now += 4
    assert lim.retry_after("198.51.100.1", "https://a") == 6
    clock.now += 6
    assert lim.retry_after("198.51.100.1", "https://a") is None


def test_clients_are_apart_by_address_and_by_issuer() -> None:
    lim = limiter(Clock())
    for _ in range(3):
        lim.refused("198.51.100.1", "https://a")
    assert lim.retry_after("198.51.100.2", "https://a") is None  # another address
    assert lim.retry_after("198.51.100.1", "https://b") is None  # another issuer, same engine


def test_an_address_naming_ever_new_issuers_meets_its_own_limit() -> None:
    lim = limiter(Clock())  # the address's bucket: 4 x 3
    for i in range(12):
        assert lim.retry_after("198.51.100.1", f"https://forged-{i}") is None
        lim.refused("198.51.100.1", f"https://forged-{i}")
    assert lim.retry_after("198.51.100.1", "https://never-seen") is not None


def test_memory_is_bounded_forgetting_the_least_recently_refused() -> None:
    lim = limiter(Clock(), max_clients=4)
    for i in range(10):
        lim.refused(f"198.51.100.{i}", "")
    assert len(lim._buckets) == 4


@pytest.mark.parametrize(("burst", "per_minute"), [(0, 6), (3, 0), (3, -1)])
def test_the_settings_must_be_positive(burst: int, per_minute: float) -> None:
    with pytest.raises(ValueError, match="REFUSED_CALLS"):
        RefusalLimiter(burst, per_minute)


def _jwt(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"Bearer eyJhbGciOiJFUzM4NCJ9.{body}.c2ln"


@pytest.mark.parametrize(
    ("authorization", "issuer"),
    [
        (_jwt({"iss": "https://ehr.example.nhs.uk"}), "https://ehr.example.nhs.uk"),
        (_jwt({"iss": "x" * 400}), "x" * 255),
        (_jwt({"iss": ["a"]}), ""),
        (_jwt(["not", "an", "object"]), ""),
        ("Bearer not-a-jwt", ""),
        ("Bearer a.!!!.c", ""),
        ("Basic dXNlcjpwYXNz", ""),
        ("", ""),
    ],
)
def test_the_issuer_a_token_names_is_read_without_trusting_it(
    authorization: str, issuer: str
) -> None:
    assert claimed_issuer(authorization) == issuer
