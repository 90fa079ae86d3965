"""Which tenant a FHIR server belongs to: the directory behind both the CDS hooks and the SMART
assessment app, built from a real trusted-issuers file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhirdata.allowlist import FhirServerNotAllowed, FhirServerPolicy
from service.auth import load_trusted_issuers
from service.tenants import TenantDirectory

ENGINE = "https://integration-engine.example.nhs.uk"
PRACTICE = "https://ehr.practice.example.nhs.uk"


@pytest.fixture
def directory(tmp_path: Path) -> TenantDirectory:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(
        json.dumps(
            [
                {
                    "iss": ENGINE,
                    "jwks_url": f"{ENGINE}/jwks.json",
                    "tenants": {
                        "whole-engine": {"fhir_servers": ["https://engine.example.nhs.uk/fhir"]},
                        "trust-b": {"fhir_servers": ["https://engine.example.nhs.uk/fhir/trust-b"]},
                    },
                },
                {
                    "iss": PRACTICE,
                    "jwks_url": f"{PRACTICE}/jwks.json",
                    "fhir_servers": ["https://fhir.practice.example.nhs.uk/r4"],
                },
            ]
        )
    )
    return TenantDirectory.from_issuers(load_trusted_issuers(issuers))


@pytest.mark.parametrize(
    ("fhir_server", "issuer", "tenant", "base"),
    [
        ("https://fhir.practice.example.nhs.uk/r4/", PRACTICE, None, "https://fhir.practice.example.nhs.uk/r4"),
        ("https://engine.example.nhs.uk/fhir/trust-a", ENGINE, "whole-engine", "https://engine.example.nhs.uk/fhir/trust-a"),
        # Listed under both; the entry that fits it more closely decides.
        ("https://engine.example.nhs.uk/fhir/trust-b", ENGINE, "trust-b", "https://engine.example.nhs.uk/fhir/trust-b"),
    ],
)  # fmt: skip
def test_a_fhir_server_belongs_to_the_tenant_whose_entry_fits_it_best(
    directory: TenantDirectory, fhir_server: str, issuer: str, tenant: str | None, base: str
) -> None:
    owner, found = directory.owner_of(fhir_server)
    assert (owner.issuer, owner.tenant, found) == (issuer, tenant, base)
    assert directory.find(issuer, tenant) is owner


@pytest.mark.parametrize(
    ("fhir_server", "message"),
    [
        ("https://fhir.elsewhere.example/r4", "allowlist"),
        ("http://fhir.practice.example.nhs.uk/r4", "https"),
        ("https://engine.example.nhs.uk/fhir/trust-b/../trust-c", "'..'"),
    ],
)
def test_a_server_that_is_no_tenants_is_refused_saying_why(
    directory: TenantDirectory, fhir_server: str, message: str
) -> None:
    with pytest.raises(FhirServerNotAllowed, match=message):
        directory.owner_of(fhir_server)


def test_a_tenant_no_longer_configured_is_not_found(directory: TenantDirectory) -> None:
    with pytest.raises(FhirServerNotAllowed, match="not configured"):
        directory.find(ENGINE, "trust-gone")
    with pytest.raises(FhirServerNotAllowed):
        directory.find(None, None)  # the deployment's allowlist is a tenant only with auth off


def test_without_authentication_the_deployment_allowlist_is_the_one_tenant() -> None:
    allowlist = FhirServerPolicy.from_config(["https://fhir.example.nhs.uk/r4"], any_loopback=True)
    directory = TenantDirectory.deployment(allowlist)
    owner, base = directory.owner_of("http://127.0.0.1:8081/fhir")
    assert (owner.issuer, owner.tenant, base) == (None, None, "http://127.0.0.1:8081/fhir")
    assert directory.owner_of("https://fhir.example.nhs.uk/r4")[0] is owner
    with pytest.raises(FhirServerNotAllowed, match="allowlist"):
        directory.owner_of("https://other.example.nhs.uk/r4")


@pytest.mark.parametrize(
    ("tenant", "fhir_server", "allowed"),
    [
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-a", True),
        # trust-b's base is nested under whole-engine's: it is trust-b's alone.
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b/", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b/r4", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-bx", True),
        ("trust-b", "https://engine.example.nhs.uk/fhir/trust-b/r4", True),
        ("trust-b", "https://engine.example.nhs.uk/fhir", False),
        ("trust-b", "https://engine.example.nhs.uk/fhir/trust-a", False),
        # Spellings an HTTP client or a server turns into trust-b's base: never whole-engine's
        ("whole-engine", "https://engine.example.nhs.uk/fhir/%74rust-b", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust%2Db", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir//trust-b", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b;x", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/TRUST-B", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/Trust-B/r4", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b%2e", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b%00", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b\x00", False),
        ("whole-engine", "https://engine.example.nhs.uk/fhir/trust-b /r4", False),
    ],
)  # fmt: skip
def test_a_tenants_token_goes_only_where_its_entry_fits_best(
    directory: TenantDirectory, tenant: str, fhir_server: str, allowed: bool
) -> None:
    access = directory.access(ENGINE, tenant)
    if allowed:
        assert access.check(fhir_server) == fhir_server.rstrip("/")
    else:
        with pytest.raises(FhirServerNotAllowed):
            access.check(fhir_server)


def test_the_bases_of_other_tenants_under_a_base_are_known(directory: TenantDirectory) -> None:
    whole = directory.access(ENGINE, "whole-engine")
    assert whole.foreign_bases("https://engine.example.nhs.uk/fhir") == (
        "https://engine.example.nhs.uk/fhir/trust-b",
    )
    assert (
        directory.access(ENGINE, "trust-b").foreign_bases(
            "https://engine.example.nhs.uk/fhir/trust-b"
        )
        == ()
    )
    assert whole.key == (ENGINE, "whole-engine")
