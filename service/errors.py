"""Errors the HTTP edge turns into 4xx answers with a FHIR OperationOutcome body.

Messages are written for the integrator reading them: they name the field, never echo a
token or a patient identifier, and never carry a traceback.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 500
    code = "exception"  # FHIR issue-type
    retry_after_s: int | None = None  # sent as Retry-After when set

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    status = 400
    code = "invalid"


class UnknownService(ServiceError):
    status = 404
    code = "not-found"


class Unauthorised(ServiceError):
    status = 401
    code = "login"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "not-supported"


class PreconditionFailed(ServiceError):
    """412: required data could not be obtained (CDS Hooks 2.0: the service SHALL answer 412)."""

    status = 412
    code = "incomplete"


class ServiceBusy(ServiceError):
    """503 at once, with Retry-After: capacity is taken (better than queueing past the deadline)."""

    status = 503
    code = "transient"
    retry_after_s = 1


class TooManyRequests(ServiceError):
    """429 with Retry-After: this client has made too many wrong attempts for now."""

    status = 429
    code = "throttled"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
