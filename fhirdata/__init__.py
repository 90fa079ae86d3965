"""Data: the request's prefetch first, the EHR's FHIR server for what is missing.

``gather`` is the entry point; ``FhirClient`` is the only code that talks to FHIR servers;
``FhirServerPolicy`` decides which servers may receive an access token.
"""

from fhirdata.allowlist import FhirServerNotAllowed, FhirServerPolicy
from fhirdata.client import FetchSettings, FhirClient, FhirError, new_session
from fhirdata.prefetch import DataUnavailable, Gathered, gather, prefetch_templates, read_types

__all__ = [
    "DataUnavailable",
    "FetchSettings",
    "FhirClient",
    "FhirError",
    "FhirServerNotAllowed",
    "FhirServerPolicy",
    "Gathered",
    "gather",
    "new_session",
    "prefetch_templates",
    "read_types",
]
