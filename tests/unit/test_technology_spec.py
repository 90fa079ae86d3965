"""Technology in use, one model read the same way by every policy: executable examples.

Insulin pump (CSII), real-time CGM, intermittently scanned CGM, hybrid closed loop (HCL) and
i-Port are one kind of fact (``facts.model.TechnologyUse``), recognised from coded, dm+d and
free-text records, Devices, DeviceUseStatements, orders and procedures; each policy's "already
using" and "uses" criterion reads it through ``policy.technology``. Each row below is a record
× a status × a date either side of a window, and says what every criterion of the three
policies that reads that kind makes of it (docs/policy-interpretation.md, "Technology in use").
"Today" is 2026-11-21.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from facts import PatientRecord
from policy import Decision, Outcome, Tri, evaluate, load_policy
from policy.decide import speaks_proactively
from tests.builders import (
    T1DM,
    condition,
    confirmation,
    hba1c,
    observation_finding,
    patient,
    type1_meets,
)
from tests.technology_builders import (
    CSII_STARTED,
    DEXCOM_G7,
    HCL_CODE,
    LIBRE_2,
    PUMP_CODE,
    device,
    device_order,
    device_use,
    procedure,
    supply,
)

TODAY = date(2026, 11, 21)
IPORT = load_policy("iport-advance")
PUMP = load_policy("nice-insulin-pump")
HCL = load_policy("nice-hybrid-closed-loop")
POLICIES = {"iport": IPORT, "pump": PUMP, "hcl": HCL}

# Every criterion that reads each kind, by policy; "has" criteria ask whether the person
# already has the technology (a prompt for it is silenced, absence is *not met*, an event of
# any age counts); "had" criteria ask about management the person has had (TA943 1.1: absence
# is *unknown* and confirmable, an event counts for 12 months). Both count a paused device.
READERS: dict[str, list[tuple[str, str, str]]] = {
    "insulin-pump": [
        ("iport", "already-on-pump", "has"),
        ("pump", "already-on-pump", "has"),
        ("hcl", "uses-csii", "had"),
    ],
    "real-time-cgm": [("hcl", "uses-real-time-cgm", "had")],
    "intermittently-scanned-cgm": [("hcl", "uses-intermittently-scanned-cgm", "had")],
    "hybrid-closed-loop": [("hcl", "already-on-hcl", "has")],
    "iport-device": [("iport", "already-on-iport", "has")],
}

IN_USE, HELD, NOT_IN_USE, NOT_CURRENT, OLD_EVENT = (
    "in use",
    "held",
    "not in use",
    "not current",
    "event over 12 months ago",
)


def expected(state: str, reading: str) -> Tri:
    if state in (IN_USE, HELD):
        return Tri.MET
    if state == NOT_IN_USE:
        return Tri.NOT_MET if reading == "has" else Tri.UNKNOWN
    if state == OLD_EVENT:
        return Tri.MET if reading == "has" else Tri.UNKNOWN
    return Tri.UNKNOWN  # not current: an issue of supplies older than its window


@dataclass(frozen=True)
class Row:
    kind: str
    record: str  # what the row is, in words
    resources: tuple[dict[str, Any], ...]
    state: str


def rows() -> list[Row]:
    out: list[Row] = []

    def add(kind: str, what: str, state: str, *resources: dict[str, Any]) -> None:
        out.append(Row(kind, what, resources, state))

    # -- insulin pump: coded, dm+d / text supplies, Device, DeviceUseStatement ---------------
    pump = "insulin-pump"
    add(pump, "coded procedure, 6 months ago", IN_USE, procedure(CSII_STARTED))
    add(pump, "coded procedure, 2 years ago", OLD_EVENT, procedure(CSII_STARTED, on="2024-11-01"))
    add(pump, "procedure not done", NOT_IN_USE, procedure(CSII_STARTED, status="not-done"))
    add(pump, "pods by name, issued 1 Oct", IN_USE, supply(text="Omnipod DASH Pods 5 pods"))
    add(pump, "infusion sets by name", IN_USE, supply(text="YpsoPump Orbit soft infusion set"))
    for status in ("active", "completed"):
        add(
            pump,
            f"reservoirs, {status}",
            IN_USE,
            supply(text="Insulin pump reservoir 1.6ml", status=status),
        )
    add(
        pump,
        "reservoirs, on-hold",
        HELD,
        supply(text="Insulin pump reservoir 1.6ml", status="on-hold"),
    )
    for status in ("draft", "cancelled", "stopped", "entered-in-error"):
        add(
            pump,
            f"reservoirs, {status}",
            NOT_IN_USE,
            supply(text="Insulin pump reservoir", status=status),
        )
    add(
        pump, "reservoirs, a plan", NOT_IN_USE, supply(text="Insulin pump reservoir", intent="plan")
    )
    add(pump, "supply inside 6 months", IN_USE, supply(text="Pump reservoir", on="2026-05-21"))
    add(
        pump, "supply outside 6 months", NOT_CURRENT, supply(text="Pump reservoir", on="2026-05-20")
    )
    add(pump, "Device, active", IN_USE, device(type_code=PUMP_CODE))
    add(pump, "Device, inactive", NOT_IN_USE, device(type_code=PUMP_CODE, status="inactive"))
    add(
        pump,
        "Device, entered in error",
        NOT_IN_USE,
        device(type_code=PUMP_CODE, status="entered-in-error"),
    )
    add(pump, "DUS by display, active", IN_USE, device_use(display="YpsoPump insulin pump"))
    add(pump, "DUS, on-hold", HELD, device_use(display="YpsoPump insulin pump", status="on-hold"))
    for status in ("intended", "completed", "stopped", "entered-in-error"):
        add(pump, f"DUS, {status}", NOT_IN_USE, device_use(display="YpsoPump", status=status))
    add(
        pump,
        "DUS starting after today",
        NOT_IN_USE,
        device_use(display="YpsoPump", start="2026-12-21"),
    )
    add(pump, "DUS ended yesterday", NOT_IN_USE, device_use(display="YpsoPump", end="2026-11-20"))
    add(pump, "DUS ending today", IN_USE, device_use(display="YpsoPump", end="2026-11-21"))
    pump_device = device(type_code=PUMP_CODE, rid="pump-a")
    add(
        pump,
        "DUS of a Device, recorded 2 years ago, still active",
        IN_USE,
        pump_device,
        device_use(device_ref="Device/pump-a", start="2023-01-10", recorded="2024-01-10"),
    )
    add(
        pump,
        "DUS of a Device, completed: the statement decides, not the Device",
        NOT_IN_USE,
        device(type_code=PUMP_CODE, rid="pump-b"),
        device_use(device_ref="Device/pump-b", status="completed"),
    )
    add(
        pump,
        "DUS of a Device, on hold",
        HELD,
        device(type_code=PUMP_CODE, rid="pump-c"),
        device_use(device_ref="Device/pump-c", status="on-hold", recorded="2026-11-02"),
    )
    add(pump, "a referral for a pump", NOT_IN_USE)  # no record of use at all

    # -- real-time CGM ---------------------------------------------------------------------
    rt = "real-time-cgm"
    add(rt, "dm+d sensor", IN_USE, supply(DEXCOM_G7))
    add(rt, "sensor by name only", IN_USE, supply(text="Dexcom G7 sensor 1 kit"))
    add(rt, "dm+d sensor, on-hold", HELD, supply(DEXCOM_G7, status="on-hold"))
    add(rt, "dm+d sensor, cancelled", NOT_IN_USE, supply(DEXCOM_G7, status="cancelled"))
    add(
        rt,
        "dm+d sensor, entered in error",
        NOT_IN_USE,
        supply(DEXCOM_G7, status="entered-in-error"),
    )
    add(rt, "sensor inside 6 months", IN_USE, supply(DEXCOM_G7, on="2026-05-21"))
    add(rt, "sensor outside 6 months", NOT_CURRENT, supply(DEXCOM_G7, on="2026-05-20"))
    add(rt, "Device by type text", IN_USE, device(type_text="Dexcom G7 continuous glucose monitor"))
    add(rt, "DUS, active", IN_USE, device_use(display="Dexcom G7"))
    add(rt, "DUS, on-hold", HELD, device_use(display="Dexcom G7", status="on-hold"))
    add(
        rt,
        "DUS, intended next month",
        NOT_IN_USE,
        device_use(display="Dexcom G7", status="intended", start="2026-12-21"),
    )

    # -- intermittently scanned CGM ----------------------------------------------------------
    isc = "intermittently-scanned-cgm"
    add(isc, "dm+d sensor", IN_USE, supply(LIBRE_2))
    add(isc, "sensor by name only", IN_USE, supply(text="FreeStyle Libre 2 sensor"))
    add(isc, "dm+d sensor, on-hold", HELD, supply(LIBRE_2, status="on-hold"))
    add(isc, "dm+d sensor, stopped", NOT_IN_USE, supply(LIBRE_2, status="stopped"))
    add(isc, "sensor outside 6 months", NOT_CURRENT, supply(LIBRE_2, on="2026-05-20"))
    add(isc, "DUS, active", IN_USE, device_use(display="FreeStyle Libre 2"))
    add(isc, "DUS, on-hold", HELD, device_use(display="FreeStyle Libre 2", status="on-hold"))
    add(
        isc,
        "DUS, completed",
        NOT_IN_USE,
        device_use(display="FreeStyle Libre 2", status="completed"),
    )

    # -- hybrid closed loop ------------------------------------------------------------------
    hcl = "hybrid-closed-loop"
    add(hcl, "coded finding", IN_USE, condition(HCL_CODE, onset="2025-03-03"))
    add(
        hcl,
        "Omnipod 5 pods by dm+d name only",
        IN_USE,
        supply(text="Omnipod 5 Pods (Insulet) 5 pods"),
    )
    add(hcl, "Omnipod 5 pods, on-hold", HELD, supply(text="Omnipod 5 Pods", status="on-hold"))
    add(
        hcl,
        "Omnipod 5 pods, outside 6 months",
        NOT_CURRENT,
        supply(text="Omnipod 5 Pods", on="2026-04-01"),
    )
    add(
        hcl,
        "MiniMed 780G: Device typed 'insulin pump' with a DUS",
        IN_USE,
        device(type_text="Insulin pump", name="MiniMed 780G", rid="mm780"),
        device_use(device_ref="Device/mm780"),
    )
    add(
        hcl,
        "CamAPS FX with YpsoPump in free text",
        IN_USE,
        device_use(display="CamAPS FX with YpsoPump"),
    )
    add(
        hcl,
        "t:slim X2 with Control-IQ, on hold",
        HELD,
        device_use(display="t:slim X2 with Control-IQ", status="on-hold"),
    )
    add(hcl, "Omnipod 5, intended", NOT_IN_USE, device_use(display="Omnipod 5", status="intended"))

    # -- i-Port ------------------------------------------------------------------------------
    ip = "iport-device"
    add(ip, "completed i-Port order", IN_USE, device_order("i-Port Advance injection port 9mm"))
    add(
        ip,
        "active i-Port order: on order, not in use",
        NOT_IN_USE,
        device_order("i-Port Advance 9mm", status="active"),
    )
    add(ip, "i-Port prescription", IN_USE, supply(text="i-Port Advance injection port 6mm"))
    add(
        ip,
        "i-Port prescription, on-hold",
        HELD,
        supply(text="i-Port Advance 6mm", status="on-hold"),
    )
    add(
        ip,
        "i-Port prescription outside 6 months",
        NOT_CURRENT,
        supply(text="i-Port Advance", on="2026-05-20"),
    )
    add(ip, "Device", IN_USE, device(name="i-Port Advance"))
    add(ip, "DUS, on-hold", HELD, device_use(display="i-Port Advance", status="on-hold"))
    add(ip, "DUS, stopped", NOT_IN_USE, device_use(display="i-Port Advance", status="stopped"))
    return out


ROWS = rows()
# A hybrid closed loop is also a pump and real-time CGM in use (valuesets/technology-kinds.json)
IMPLIED = {"hybrid-closed-loop": ("insulin-pump", "real-time-cgm")}


def decisions(record: PatientRecord) -> dict[str, Decision]:
    return {name: evaluate(p, record, TODAY) for name, p in POLICIES.items()}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.kind}: {r.record}")
def test_every_policy_reads_a_technology_record_the_same_way(
    record: Callable[..., PatientRecord], row: Row
) -> None:
    decided = decisions(record(patient(), condition(T1DM), *row.resources))
    kinds = (row.kind, *(IMPLIED.get(row.kind, ()) if row.state != NOT_IN_USE else ()))
    for kind in kinds:
        for policy, criterion, reading in READERS[kind]:
            got = decided[policy].criteria[criterion]
            assert got.result is expected(row.state, reading), (policy, criterion, got.reason)


@pytest.mark.parametrize("row", [r for r in ROWS if r.state == HELD], ids=lambda r: r.record)
def test_a_paused_technology_says_paused_and_since_when(
    record: Callable[..., PatientRecord], row: Row
) -> None:
    (policy, criterion, _), *_ = READERS[row.kind]
    result = decisions(record(patient(), condition(T1DM), *row.resources))[policy].criteria[
        criterion
    ]
    assert "paused" in result.reason
    assert "the person has it" in result.reason


# -- on hold, per kind: the prompt and each policy's criteria --------------------------------
# A type 1 adult who meets the i-Port and the NICE pump criteria (HbA1c 75 on basal-bolus MDI,
# needle phobia); whether TA943 is met depends on the technology they have had.
@pytest.mark.parametrize(
    ("kind", "held", "prompts", "criteria"),
    [
        (
            "insulin-pump",
            device_use(display="YpsoPump insulin pump", status="on-hold", recorded="2026-11-02"),
            # the i-Port is an alternative to a pump: one held is no prompt for an i-Port
            {"iport": False, "pump": False, "hcl": True},
            {("pump", "already-on-pump"): Tri.MET, ("hcl", "uses-csii"): Tri.MET},
        ),
        (
            "real-time-cgm",
            supply(DEXCOM_G7, status="on-hold"),
            {"iport": True, "pump": True, "hcl": True},
            {("hcl", "uses-real-time-cgm"): Tri.MET, ("hcl", "already-on-hcl"): Tri.NOT_MET},
        ),
        (
            "hybrid-closed-loop",
            device_use(display="Omnipod 5", status="on-hold", recorded="2026-11-02"),
            {"iport": False, "pump": False, "hcl": False},
            {
                ("hcl", "already-on-hcl"): Tri.MET,
                ("hcl", "uses-csii"): Tri.MET,
                ("pump", "already-on-pump"): Tri.MET,
                ("iport", "already-on-pump"): Tri.MET,
            },
        ),
        (
            "iport-device",
            device_use(display="i-Port Advance", status="on-hold", recorded="2026-11-02"),
            {"iport": False, "pump": True, "hcl": False},
            {("iport", "already-on-iport"): Tri.MET, ("pump", "already-on-pump"): Tri.NOT_MET},
        ),
    ],
)
def test_on_hold_per_kind_is_held_no_prompt_to_start_it(
    record: Callable[..., PatientRecord],
    kind: str,
    held: dict[str, Any],
    prompts: dict[str, bool],
    criteria: dict[tuple[str, str], Tri],
) -> None:
    rec = record(*type1_meets(), held)
    decided = decisions(rec)
    for (policy, criterion), want in criteria.items():
        assert decided[policy].criteria[criterion].result is want, (policy, criterion)
    assert {name: speaks_proactively(d, rec) for name, d in decided.items()} == prompts


def test_a_paused_omnipod_5_is_named_on_the_card_with_its_date(
    record: Callable[..., PatientRecord],
) -> None:
    # in use since March 2025, put on hold on 2 Nov 2026 (a skin reaction)
    held = device_use(
        display="Omnipod 5", status="on-hold", start="2025-03-03", recorded="2026-11-02"
    )
    d = decisions(record(*type1_meets(), held))
    assert (
        d["hcl"]
        .criteria["already-on-hcl"]
        .reason.startswith("Omnipod 5 (hybrid closed loop) paused since 2 Nov 2026")
    )
    assert (
        d["iport"]
        .notices[0]
        .startswith(
            "Already on an insulin pump: Omnipod 5 (hybrid closed loop, so insulin pump (CSII)) "
            "paused since 2 Nov 2026."
        )
    )


# -- free text: a referral, plan, wish or discussion of a technology is not its use ------------
@pytest.mark.parametrize(
    ("text", "kind", "state"),
    [
        ("Omnipod 5 hybrid closed loop started", "hybrid-closed-loop", IN_USE),
        ("CamAPS FX with YpsoPump", "hybrid-closed-loop", IN_USE),
        ("On Dexcom G7 since March", "real-time-cgm", IN_USE),
        ("Started on FreeStyle Libre 2", "intermittently-scanned-cgm", IN_USE),
        ("Referral for insulin pump assessment", "insulin-pump", NOT_IN_USE),
        ("Patient wants an insulin pump", "insulin-pump", NOT_IN_USE),
        ("Insulin pump discussed, declined", "insulin-pump", NOT_IN_USE),
        ("Interested in Omnipod 5", "hybrid-closed-loop", NOT_IN_USE),
        ("Awaiting Dexcom G7", "real-time-cgm", NOT_IN_USE),
        ("Insulin pump stopped", "insulin-pump", NOT_IN_USE),
        ("Libre 2 sensor removed", "intermittently-scanned-cgm", NOT_IN_USE),
        ("No insulin pump", "insulin-pump", NOT_IN_USE),
        ("?Dexcom G7", "real-time-cgm", NOT_IN_USE),
    ],
)
def test_free_text_names_a_technology_in_use_only_when_it_says_so(
    record: Callable[..., PatientRecord], text: str, kind: str, state: str
) -> None:
    note = observation_finding(text=text, on="2026-10-01")
    decided = decisions(record(patient(), condition(T1DM), note))
    for policy, criterion, reading in READERS[kind]:
        assert decided[policy].criteria[criterion].result is expected(state, reading), criterion


# -- the examples that were read wrongly -----------------------------------------------------
def test_planned_cancelled_and_entered_in_error_cgm_is_not_real_time_cgm_in_use(
    record: Callable[..., PatientRecord],
) -> None:
    rec = record(
        patient(),
        condition(T1DM),
        hba1c(70),
        device_use(display="Dexcom G7", status="intended", start="2026-12-21"),
        supply(DEXCOM_G7, status="cancelled"),
        supply(DEXCOM_G7, status="entered-in-error"),
    )
    d = evaluate(HCL, rec, TODAY)
    cgm = d.criteria["uses-real-time-cgm"]
    assert cgm.result is Tri.UNKNOWN
    assert "Not recorded as in use" in cgm.reason
    assert d.outcome is not Outcome.MEETS
    assert not speaks_proactively(d, rec)


def test_a_minimed_780g_typed_insulin_pump_is_hcl_in_use(
    record: Callable[..., PatientRecord],
) -> None:
    rec = record(
        *type1_meets(),
        device(type_text="Insulin pump", name="MiniMed 780G", rid="mm780"),
        device_use(device_ref="Device/mm780", start="2025-03-03"),
    )
    d = decisions(rec)
    assert d["hcl"].criteria["already-on-hcl"].reason == (
        "MiniMed 780G (hybrid closed loop) in use since 3 Mar 2025."
    )
    assert d["hcl"].outcome is Outcome.MEETS
    assert not speaks_proactively(d["hcl"], rec)
    assert not speaks_proactively(d["pump"], rec)


@pytest.mark.parametrize(
    "hcl_record",
    [
        supply(text="Omnipod 5 Pods (Insulet Ltd) 5 pod"),  # the dm+d name, no code
        device_use(display="CamAPS FX app with YpsoPump"),  # free text
    ],
    ids=["omnipod-5-dmd-name", "camaps-fx-ypsopump-text"],
)
def test_hcl_by_name_is_a_pump_and_hcl_so_no_pump_prompt(
    record: Callable[..., PatientRecord], hcl_record: dict[str, Any]
) -> None:
    # One more confirmation (disabling hypoglycaemia) would make the pump criteria met twice
    # over: the pump card must still not prompt.
    rec = record(*type1_meets(), hcl_record, confirmation("disabling-hypoglycaemia"))
    d = decisions(rec)
    assert d["pump"].outcome is Outcome.MEETS
    assert d["pump"].criteria["already-on-pump"].result is Tri.MET
    assert d["hcl"].criteria["already-on-hcl"].result is Tri.MET
    assert not speaks_proactively(d["pump"], rec)
    assert not speaks_proactively(d["hcl"], rec)
    (notice,) = d["iport"].notices
    assert notice.startswith("Already on an insulin pump")


def test_pump_records_over_a_year_old_with_the_device_still_active_are_still_in_use(
    record: Callable[..., PatientRecord],
) -> None:
    rec = record(
        *type1_meets(),
        device(type_code=PUMP_CODE, rid="old-pump"),
        device_use(device_ref="Device/old-pump", start="2022-06-01", recorded="2023-06-01"),
        procedure(CSII_STARTED, on="2022-06-01"),
    )
    d = decisions(rec)
    assert (
        d["pump"]
        .criteria["already-on-pump"]
        .reason.startswith("Insulin pump, device (insulin pump (CSII)) in use since 1 Jun 2022")
    )
    assert d["hcl"].criteria["uses-csii"].result is Tri.MET
    assert not speaks_proactively(d["pump"], rec)
