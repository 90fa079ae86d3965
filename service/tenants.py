"""Tenants and their FHIR servers: which servers an access token issued for a tenant may reach.

One directory serves both doors through which the service sends a FHIR access token: a CDS
Hooks call (the token's issuer and ``tenant`` claim name the tenant) and the SMART assessment
app (the launch's ``iss`` names a FHIR server, and so the one tenant whose server it is; the
session keeps that tenant). With authentication on, the tenants are the trusted issuers' (each
issuer's ``tenants``, or the issuer itself with its ``fhir_servers``); with it off, the
deployment is one tenant whose servers are FHIR_SERVER_ALLOWLIST (and any loopback server with
FHIR_ALLOW_LOOPBACK).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fhirdata.allowlist import FhirServerNotAllowed, FhirServerPolicy
from fhirdata.transport import TenantKey


class IssuerServers(Protocol):
    """What the directory reads of a trusted issuer (``service.auth.TrustedIssuer``, which
    imports this module): its tenants' FHIR servers, or its own."""

    @property
    def iss(self) -> str: ...

    @property
    def fhir_servers(self) -> tuple[str, ...]: ...

    @property
    def tenants(self) -> Mapping[str, tuple[str, ...]]: ...


@dataclass(frozen=True)
class Tenant:
    """One tenant and the FHIR servers its tokens may reach.

    ``issuer`` is None only for the deployment's own allowlist (authentication off);
    ``tenant`` is None for an issuer that speaks for one organisation.
    """

    issuer: str | None
    tenant: str | None
    servers: FhirServerPolicy

    def specificity(self, fhir_server: str) -> int | None:
        """How closely one of this tenant's entries fits ``fhir_server`` (the length of the
        longest base it falls under; 0 for a loopback server allowed as such), or None when
        the server is not this tenant's. Raises nothing."""
        try:
            base = self.servers.check(fhir_server)
        except FhirServerNotAllowed:
            return None
        fits = [len(a) for a in self.servers.allowed if base == a or base.startswith(a + "/")]
        return max(fits, default=0)

    @property
    def key(self) -> TenantKey:
        """What its bulkheads (breaker, pool, executor, hook slots) are keyed by."""
        return (self.issuer, self.tenant)


class TenantDirectory:
    """Every tenant's FHIR servers, built once at start-up."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self.tenants = tuple(tenants)

    @classmethod
    def from_issuers(
        cls, issuers: Mapping[str, IssuerServers], insecure_hosts: Iterable[str] = ()
    ) -> TenantDirectory:
        hosts = tuple(insecure_hosts)
        tenants: list[Tenant] = []
        for issuer in issuers.values():
            servers: list[tuple[str | None, tuple[str, ...]]] = (
                list(issuer.tenants.items()) if issuer.tenants else [(None, issuer.fhir_servers)]
            )
            for tenant, urls in servers:
                policy = FhirServerPolicy.from_config(urls, hosts)
                tenants.append(Tenant(issuer.iss, tenant, policy))
        return cls(tenants)

    @classmethod
    def deployment(cls, servers: FhirServerPolicy) -> TenantDirectory:
        """Authentication off: the deployment's allowlist is the only tenant."""
        return cls([Tenant(None, None, servers)])

    def owner_of(self, fhir_server: str) -> tuple[Tenant, str]:
        """The tenant whose server ``fhir_server`` is, and its normalised base URL.

        When several tenants list it, the one whose entry fits it most closely (the longest
        base) owns it; on a tie, the first in the configuration. Raises FhirServerNotAllowed
        (a message safe to show) when it is no tenant's server, or is not a usable URL.
        """
        best: tuple[int, Tenant] | None = None
        for tenant in self.tenants:
            fit = tenant.specificity(fhir_server)
            if fit is not None and (best is None or fit > best[0]):
                best = (fit, tenant)
        if best is None:
            if self.tenants:
                self.tenants[0].servers.check(fhir_server)  # raises, saying what is wrong
            raise FhirServerNotAllowed("fhirServer is not on this service's allowlist")
        return best[1], best[1].servers.check(fhir_server)

    def base_for(self, tenant: Tenant, fhir_server: str) -> str:
        """The normalised base URL of ``fhir_server`` when ``tenant``'s access token may go
        there: it is one of the tenant's servers and no other tenant's entry fits it more
        closely (``owner_of``'s rule, so a base nested under this tenant's is the nesting
        tenant's alone). Raises FhirServerNotAllowed (a message safe to show) otherwise."""
        base = tenant.servers.check(fhir_server)  # raises, saying what is wrong
        fit = tenant.specificity(fhir_server)
        others = [t for t in self.tenants if t is not tenant]
        if fit is None or any((t.specificity(fhir_server) or 0) > fit for t in others):
            raise FhirServerNotAllowed("fhirServer is not one of this client's FHIR servers")
        # A server whose paths ignore case reaches another tenant's nested base from the same
        # letters in another case (.../fhir/TRUST-B for .../fhir/trust-b): refused too.
        lowered = base.lower()
        for other in others:
            for a in other.servers.allowed:
                nested = lowered == a.lower() or lowered.startswith(a.lower() + "/")
                if nested and len(a) > fit:
                    raise FhirServerNotAllowed(
                        "fhirServer is not one of this client's FHIR servers"
                    )
        return base

    def nested_bases(self, tenant: Tenant, base: str) -> tuple[str, ...]:
        """Other tenants' bases under ``base`` (a server of ``tenant``): a link there leaves
        this tenant's server, so its token must not follow it."""
        return tuple(
            a
            for other in self.tenants
            if other is not tenant
            for a in other.servers.allowed
            if a.startswith(base + "/")
        )

    def access(self, issuer: str | None, tenant: str | None) -> FhirAccess:
        """Where the tenant with this issuer and id may send its tokens (``find``'s errors)."""
        return FhirAccess(self, self.find(issuer, tenant))

    def find(self, issuer: str | None, tenant: str | None) -> Tenant:
        """The tenant with this issuer and id; FhirServerNotAllowed when there is none (any
        more: the configuration changed since a session was started)."""
        for t in self.tenants:
            if t.issuer == issuer and t.tenant == tenant:
                return t
        raise FhirServerNotAllowed("the tenant this session was started for is not configured")


@dataclass(frozen=True)
class FhirAccess:
    """One tenant's door to FHIR, the same for a hook and for the assessment app: which
    servers its access token may reach (by the longest matching base), which paths under
    them are another tenant's, and the key of its bulkheads."""

    directory: TenantDirectory
    tenant: Tenant

    @classmethod
    def deployment(cls, servers: FhirServerPolicy) -> FhirAccess:
        """Authentication off: the deployment's allowlist is the one tenant."""
        directory = TenantDirectory.deployment(servers)
        return cls(directory, directory.tenants[0])

    @property
    def key(self) -> TenantKey:
        return self.tenant.key

    def check(self, fhir_server: str) -> str:
        """The normalised base URL, or FhirServerNotAllowed (``TenantDirectory.base_for``)."""
        return self.directory.base_for(self.tenant, fhir_server)

    def foreign_bases(self, base: str) -> tuple[str, ...]:
        return self.directory.nested_bases(self.tenant, base)
