"""Facts: what the policy needs from a patient's FHIR record, as small typed objects.

``extract_record`` turns FHIR JSON into a ``PatientRecord``; it imports no web or HTTP code.
"""

from facts.extract import extract_record, order_in, parse_fhir_date
from facts.model import (
    BirthDate,
    Confirmation,
    Finding,
    HbA1cResult,
    InsulinOrder,
    NotTheirs,
    Order,
    PatientRecord,
    WithdrawnConfirmation,
)

__all__ = [
    "BirthDate",
    "Confirmation",
    "Finding",
    "HbA1cResult",
    "InsulinOrder",
    "NotTheirs",
    "Order",
    "PatientRecord",
    "WithdrawnConfirmation",
    "extract_record",
    "order_in",
    "parse_fhir_date",
]
