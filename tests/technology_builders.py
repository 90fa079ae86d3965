"""Builders for records of diabetes technology, as UK GP and hospital systems write them: a Device
assigned to the patient, a DeviceUseStatement, a prescription of supplies (dm+d or name only),
an order of a device, a procedure or a coded finding."""

from __future__ import annotations

import itertools
from typing import Any

from tests.builders import DMD, PID, SNOMED, coding

_ids = itertools.count(1)

PUMP_CODE = (SNOMED, "69805005", "Insulin pump, device")
CSII_STARTED = (SNOMED, "443263006", "Insertion of insulin pump")
HCL_CODE = (
    SNOMED,
    "1516031000000105",
    "Uses continuous subcutaneous automated insulin delivery system",
)
DEXCOM_G7 = (DMD, "43230011000001106", "Dexcom G7 Sensor (Dexcom International Ltd)")
LIBRE_2 = (DMD, "39094611000001105", "FreeStyle Libre 2 Sensor (Abbott Laboratories Ltd)")


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _subject(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def device(
    *,
    type_text: str | None = None,
    type_code: tuple[str, str, str] | None = None,
    name: str | None = None,
    status: str | None = "active",
    rid: str | None = None,
    pid: str = PID,
) -> dict[str, Any]:
    """A Device assigned to the patient (``Device.patient``)."""
    d: dict[str, Any] = {
        "resourceType": "Device",
        "id": rid or _id("device"),
        "patient": _subject(pid),
    }
    if status is not None:
        d["status"] = status
    concept: dict[str, Any] = {}
    if type_code:
        concept["coding"] = [coding(type_code)]
    if type_text:
        concept["text"] = type_text
    if concept:
        d["type"] = concept
    if name:
        d["deviceName"] = [{"name": name, "type": "user-friendly-name"}]
    return d


def device_use(
    *,
    device_ref: str | None = None,
    display: str | None = None,
    status: str = "active",
    start: str | None = "2025-03-03",
    end: str | None = None,
    recorded: str | None = None,
    pid: str = PID,
) -> dict[str, Any]:
    """A DeviceUseStatement naming a Device by reference, or only by display."""
    target: dict[str, Any] = {}
    if device_ref:
        target["reference"] = device_ref
    if display:
        target["display"] = display
    r: dict[str, Any] = {
        "resourceType": "DeviceUseStatement",
        "id": _id("device-use"),
        "status": status,
        "subject": _subject(pid),
        "device": target,
    }
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        r["timingPeriod"] = period
    if recorded:
        r["recordedOn"] = recorded
    return r


def supply(
    code: tuple[str, str, str] | None = None,
    *,
    text: str | None = None,
    status: str = "active",
    intent: str = "order",
    on: str = "2026-10-01",
    pid: str = PID,
) -> dict[str, Any]:
    """A prescription of supplies (sensors, pods, reservoirs, i-Ports): by dm+d code, by name
    only, or both."""
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [coding(code)]
    concept["text"] = text or (code[2] if code else "")
    return {
        "resourceType": "MedicationRequest",
        "id": _id("supply"),
        "status": status,
        "intent": intent,
        "subject": _subject(pid),
        "medicationCodeableConcept": concept,
        "authoredOn": on,
    }


def device_order(
    text: str, *, status: str = "completed", on: str = "2026-10-01", pid: str = PID
) -> dict[str, Any]:
    return {
        "resourceType": "DeviceRequest",
        "id": _id("device-order"),
        "status": status,
        "intent": "order",
        "subject": _subject(pid),
        "codeCodeableConcept": {"text": text},
        "authoredOn": on,
    }


def procedure(
    code: tuple[str, str, str] | None = None,
    *,
    text: str | None = None,
    status: str = "completed",
    on: str = "2026-06-01",
    pid: str = PID,
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [coding(code)]
    if text:
        concept["text"] = text
    return {
        "resourceType": "Procedure",
        "id": _id("procedure"),
        "status": status,
        "subject": _subject(pid),
        "code": concept,
        "performedDateTime": on,
    }
