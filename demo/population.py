"""A synthetic population as a Bulk FHIR export: ``Patient.ndjson``, ``Condition.ndjson``,
``Observation.ndjson``, ``MedicationRequest.ndjson``, ``Procedure.ndjson`` and
``DeviceRequest.ndjson``, one resource per line.

Deterministic for a seed; written patient by patient (bounded memory at any size). The mix
is a diabetes-heavy practice export, so every rule of the policy is exercised: about a third
without diabetes, a tenth type 1 (some children), the rest type 2; HbA1c in mmol/mol (SNOMED)
or % (LOINC); insulin by dm+d or RxNorm with text or structured dosage; findings by code or
by free text; and clinicians' confirmations. Each patient is registered at a practice
(fictional ODS codes, in the six Humber and North Yorkshire places; some at none, some at a
practice named without its code), lives at a postcode of that place and has an NHS ethnic
category; some are on an insulin pump (a Procedure) or have an i-Port on order (a
DeviceRequest). The lookups for these practices and postcodes are ``demo/practice-places.csv``
(practice → place), ``demo/synthetic-practice-pcn.csv`` (practice → primary care network),
``demo/synthetic-postcode-lsoa.csv`` (postcode → small area) and
``demo/synthetic-lsoa-imd.csv`` (small area → deprivation quintile): synthetic, labelled so;
the networks, small areas and quintiles are illustrative, not real ones or the English Indices
of Deprivation. Dates are relative to ``today``: evaluate the files with the same ``--today``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CRITERIA = "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria"
TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
    "DeviceRequest",
)
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
# Fictional practices (ODS-shaped codes) per place, with postcode districts of that place.
PRACTICES = {
    "hull": (("Z11001", "Z11002", "Z11003"), ("HU1", "HU3", "HU5", "HU8", "HU9")),
    "east-riding": (("Z12001", "Z12002"), ("HU17", "YO15", "YO25", "DN14")),
    "north-yorkshire": (("Z13001", "Z13002", "Z13003"), ("HG1", "YO11", "YO12", "DL7", "BD23")),
    "vale-of-york": (("Z14001", "Z14002"), ("YO1", "YO10", "YO24", "YO31")),
    "north-lincolnshire": (("Z15001",), ("DN15", "DN16", "DN17")),
    "north-east-lincolnshire": (("Z16001", "Z16002"), ("DN31", "DN32", "DN34")),
}
# Each district's synthetic postcode units: demo/synthetic-postcode-lsoa.csv gives most of
# them a small area (not all: the report lists the unmatched); the areas are not real ones.
DEMO_POSTCODE_UNITS = ("1AB", "2DE", "3FG", "4HJ", "5LN", "6PQ")
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
PRACTICE_NAMES = {
    code: f"{name} Surgery"
    for name, code in zip(
        (
            "Aire",
            "Beck",
            "Calder",
            "Derwent",
            "Esk",
            "Foss",
            "Gypsey",
            "Hertford",
            "Ings",
            "Jet",
            "Kyle",
            "Leven",
            "Marra",
        ),
        (c for codes, _ in PRACTICES.values() for c in codes),
        strict=True,
    )
}
UKCORE_ETHNIC = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
UKCORE_ETHNIC_CODES = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategory"
# Illustrative shares of the NHS ethnic categories, "Z" not stated and "99" not known included.
ETHNIC_WEIGHTS = {
    "A": 80,
    "B": 1,
    "C": 4,
    "D": 1,
    "F": 1,
    "H": 2,
    "J": 1,
    "K": 1,
    "L": 1,
    "M": 1,
    "N": 1,
    "R": 1,
    "S": 1,
    "Z": 3,
    "99": 1,
}


def ethnic_category(rng: random.Random) -> dict[str, Any]:
    """A UK Core ethnic category extension with a code drawn by ``ETHNIC_WEIGHTS``."""
    code = rng.choices(list(ETHNIC_WEIGHTS), weights=list(ETHNIC_WEIGHTS.values()))[0]
    return {
        "url": UKCORE_ETHNIC,
        "valueCodeableConcept": {"coding": [{"system": UKCORE_ETHNIC_CODES, "code": code}]},
    }


PLACE_WEIGHTS = {  # roughly by population
    "hull": 0.16,
    "east-riding": 0.20,
    "north-yorkshire": 0.36,
    "vale-of-york": 0.12,
    "north-lincolnshire": 0.10,
    "north-east-lincolnshire": 0.09,
}
PUMP_PROCEDURE = (SCT, "180178009", "Continuous subcutaneous infusion of insulin")

T1 = (SCT, "46635009", "Type 1 diabetes mellitus")
T2 = (SCT, "44054006", "Type 2 diabetes mellitus")
OTHER_CONDITIONS = [
    (SCT, "38341003", "Hypertensive disorder, systemic arterial"),
    (SCT, "195967001", "Asthma"),
    (SCT, "714628002", "Prediabetes"),
    (SCT, "55822004", "Hyperlipidaemia"),
]
BOLUS = [
    (
        SCT,
        "3282211000001106",
        "NovoRapid FlexPen 100units/ml solution for injection 3ml pre-filled pens",
    ),
    (
        SCT,
        "34043011000001106",
        "Fiasp FlexTouch 100units/ml solution for injection 3ml pre-filled pens",
    ),
    (
        SCT,
        "13877811000001105",
        "Humalog KwikPen 100units/ml solution for injection 3ml pre-filled pens",
    ),
    (RXNORM, "865098", "Insulin Lispro 100 UNT/ML Injectable Solution [Humalog]"),
]
BASAL = [
    (
        SCT,
        "11933011000001106",
        "Lantus 100units/ml solution for injection 3ml pre-filled SoloStar pens",
    ),
    (
        SCT,
        "21930011000001100",
        "Tresiba FlexTouch 100units/ml solution for injection 3ml pre-filled pens",
    ),
    (
        SCT,
        "7589411000001100",
        "Levemir FlexPen 100units/ml solution for injection 3ml pre-filled pens",
    ),
    (RXNORM, "274783", "insulin glargine"),
]
MIXED = [
    (
        SCT,
        "17609511000001109",
        "Humulin M3 KwikPen 100units/ml suspension for injection 3ml pre-filled pens",
    ),
    (
        SCT,
        "3277211000001104",
        "NovoMix 30 FlexPen 100units/ml suspension for injection 3ml pre-filled pens",
    ),
    (RXNORM, "106892", "Humulin 70/30 Injectable Suspension"),
]


class _Writer:
    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.files = {t: (out / f"{t}.ndjson").open("wb") for t in TYPES}
        self.count = 0

    def write(self, resource: dict[str, Any]) -> None:
        self.files[resource["resourceType"]].write(orjson.dumps(resource) + b"\n")
        self.count += 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class _Patient:
    """Builds one patient's resources; ids are UUIDs drawn from the seeded generator."""

    def __init__(
        self, rng: random.Random, today: date, writer: _Writer, extra: random.Random
    ) -> None:
        self.rng, self.today, self.w = rng, today, writer
        self.extra = extra  # places, postcodes and devices: the clinical draws stay as they were
        self.pid = self.new_id()

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ago(self, lo: int, hi: int) -> str:
        return (self.today - timedelta(days=self.rng.randint(lo, hi))).isoformat()

    def subj(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def patient(self, age_lo: int, age_hi: int) -> None:
        born = self.today - timedelta(days=self.rng.randint(age_lo * 365 + 1, age_hi * 365 + 364))
        self.w.write(
            {
                "resourceType": "Patient",
                "id": self.pid,
                "identifier": [
                    {
                        "system": "https://example.org/fhir/Id/local-patient-id",
                        # unique, as a local identifier is: a population run keys people by it
                        "value": self.pid,
                    }
                ],
                "gender": self.rng.choice(["female", "male"]),
                "birthDate": born.isoformat(),
                **self.registration(),
            }
        )

    def registration(self) -> dict[str, Any]:
        """Registered practice, postcode and ethnic category; 6 % registered nowhere the table
        knows, 1 % at a practice named without an ODS code, 1 % at no practice at all. The
        postcode is one of the district's in ``DEMO_POSTCODE_UNITS``, some written without the
        space or in lower case as exports do."""
        x = self.extra
        place = x.choices(list(PLACE_WEIGHTS), weights=list(PLACE_WEIGHTS.values()))[0]
        practices, districts = PRACTICES[place]
        district = x.choice(districts)
        # Drawn and not used: later draws (devices) stay as they were before postcodes were
        # taken from a short list. Who (unit, spelling, ethnicity) comes from the patient's own
        # generator.
        x.randint(1, 9), x.choice(UNIT_LETTERS), x.choice(UNIT_LETTERS)
        who = random.Random(self.pid)  # noqa: S311 - synthetic data, not security
        postcode = f"{district} {who.choice(DEMO_POSTCODE_UNITS)}"
        spelling = who.random()
        if spelling < 0.1:
            postcode = postcode.replace(" ", "")
        elif spelling < 0.15:
            postcode = postcode.lower()
        out: dict[str, Any] = {
            "extension": [ethnic_category(who)],
            "address": [{"use": "home", "postalCode": postcode}],
        }
        roll = x.random()
        if roll < 0.02:
            if who.random() < 0.5:
                out["generalPractitioner"] = [{"display": "The Surgery, High Street"}]
            return out
        code = f"Z99{x.randint(100, 999)}" if roll < 0.08 else x.choice(practices)
        out["generalPractitioner"] = [
            {
                "type": "Organization",
                "identifier": {"system": ODS, "value": code},
                "display": PRACTICE_NAMES.get(code, f"Practice {code}"),
            }
        ]
        return out

    def pump(self) -> None:
        self.w.write(
            {
                "resourceType": "Procedure",
                "id": self.new_id(),
                "status": "completed",
                "code": {
                    "coding": [
                        {
                            "system": PUMP_PROCEDURE[0],
                            "code": PUMP_PROCEDURE[1],
                            "display": PUMP_PROCEDURE[2],
                        }
                    ]
                },
                "subject": self.subj(),
                "performedDateTime": self.ago(60, 8 * 365),
            }
        )

    def iport(self) -> None:
        self.w.write(
            {
                "resourceType": "DeviceRequest",
                "id": self.new_id(),
                "status": "active",
                "intent": "order",
                "codeCodeableConcept": {"text": "i-Port Advance injection port 9mm"},
                "subject": self.subj(),
                "authoredOn": self.ago(10, 400),
            }
        )

    def condition(
        self, code: tuple[str, str, str] | None, onset: str, text: str | None = None
    ) -> None:
        concept: dict[str, Any] = {}
        if code:
            concept["coding"] = [{"system": code[0], "code": code[1], "display": code[2]}]
        if text:
            concept["text"] = text
        self.w.write(
            {
                "resourceType": "Condition",
                "id": self.new_id(),
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "code": "confirmed",
                        }
                    ]
                },
                "code": concept,
                "subject": self.subj(),
                "onsetDateTime": onset,
            }
        )

    def hba1c(self, mmol: float, when: str) -> None:
        if self.rng.random() < 0.15:  # a US-style result in % (DCCT)
            code = {
                "system": LOINC,
                "code": "4548-4",
                "display": "Hemoglobin A1c/Hemoglobin.total in Blood",
            }
            qty = {
                "value": round(mmol / 10.929 + 2.15, 1),
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            }
        else:
            code = {
                "system": SCT,
                "code": "1049321000000109",
                "display": "Haemoglobin A1c level - IFCC standardised",
            }
            qty = {
                "value": round(mmol),
                "unit": "mmol/mol",
                "system": "http://unitsofmeasure.org",
                "code": "mmol/mol",
            }
        self.w.write(
            {
                "resourceType": "Observation",
                "id": self.new_id(),
                "status": "final",
                "code": {"coding": [code]},
                "subject": self.subj(),
                "effectiveDateTime": when,
                "valueQuantity": qty,
            }
        )

    def finding(
        self, code: tuple[str, str, str] | None, when: str, text: str | None = None
    ) -> None:
        concept: dict[str, Any] = (
            {"coding": [{"system": code[0], "code": code[1], "display": code[2]}]} if code else {}
        )
        if text:
            concept["text"] = text
        self.w.write(
            {
                "resourceType": "Observation",
                "id": self.new_id(),
                "status": "final",
                "code": concept,
                "subject": self.subj(),
                "effectiveDateTime": when,
            }
        )

    def confirmation(self, criterion: str, value: bool, when: str) -> None:
        self.w.write(
            {
                "resourceType": "Observation",
                "id": self.new_id(),
                "status": "final",
                "code": {"coding": [{"system": CRITERIA, "code": criterion}]},
                "subject": self.subj(),
                "effectiveDateTime": when,
                "performer": [{"display": "Diabetes specialist (synthetic)"}],
                "valueBoolean": value,
            }
        )

    def insulin(self, product: tuple[str, str, str], dosage: dict[str, Any]) -> None:
        self.w.write(
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id(),
                "status": "active" if self.rng.random() > 0.05 else "stopped",
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [{"system": product[0], "code": product[1], "display": product[2]}]
                },
                "subject": self.subj(),
                "authoredOn": self.ago(10, 200),
                "dosageInstruction": [dosage],
            }
        )


def _dosage(rng: random.Random, per_day: int) -> dict[str, Any]:
    if rng.random() < 0.05:
        return {"text": "Use as directed"}
    if rng.random() < 0.3:
        if per_day == 3:
            return {"timing": {"repeat": {"when": ["ACM", "ACD", "ACV"]}}}
        return {"timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}}
    return {
        "text": {
            1: "Inject once daily at night",
            2: "Inject twice daily before breakfast and evening meal",
            3: "Inject three times a day with meals",
        }[per_day]
    }


def _diabetic(p: _Patient, type1: bool) -> None:
    rng = p.rng
    child = type1 and rng.random() < 0.12
    p.patient(*((4, 11) if child else ((16, 80) if type1 else (35, 90))))
    p.condition(T1 if type1 else T2, p.ago(365, 20 * 365))
    centre = rng.gauss(68 if type1 else 60, 12)
    for _ in range(rng.choice([0, 1, 2, 2, 3, 4]) if not type1 else rng.choice([1, 2, 3])):
        p.hba1c(max(35.0, rng.gauss(centre, 5)), p.ago(5, 540))
    on_insulin = type1 or rng.random() < 0.35
    if on_insulin:
        regimen = rng.random()
        if type1 or regimen < 0.15:  # basal-bolus (MDI)
            p.insulin(rng.choice(BOLUS), _dosage(rng, 3))
            p.insulin(rng.choice(BASAL), _dosage(rng, 1))
        elif regimen < 0.5:
            p.insulin(rng.choice(MIXED), _dosage(rng, 2))
        else:
            p.insulin(rng.choice(BASAL), _dosage(rng, 1))

    def chance(prob: float) -> bool:
        return rng.random() < prob

    if chance(0.05 if type1 else 0.02):
        p.condition(
            None,
            p.ago(30, 900),
            rng.choice(["Needle phobia", "Fear of needles", "Injection phobia"]),
        )
    if chance(0.08 if on_insulin else 0.0):
        p.condition((SCT, "238894004", "Insulin lipohypertrophy"), p.ago(30, 900))
    if chance(0.04 if type1 else 0.01):
        p.condition(
            (SCT, "170766006", "Loss of hypoglycaemic warning due to diabetes mellitus"),
            p.ago(10, 500),
        )
    for _ in range(rng.choice([0, 0, 0, 1, 2, 3]) if on_insulin else 0):
        p.finding((SCT, "237633009", "Hypoglycaemia due to diabetes mellitus"), p.ago(5, 600))
    if chance(0.06):
        p.condition(
            (ICD10CM, "Z91.14", "Patient's other noncompliance with medication regimen"),
            p.ago(10, 900),
        )
    if child and chance(0.3):
        p.confirmation("mdi-impractical", True, p.ago(5, 300))
    if not type1 and on_insulin and chance(0.08):
        p.confirmation("diabetes-specialist-recommendation", chance(0.8), p.ago(5, 300))
    if type1 and chance(0.05):
        p.confirmation("disabling-hypoglycaemia", False, p.ago(5, 300))
    # Technology in use (about 1 in 6 adults with type 1 on a pump; i-Ports are rare).
    if p.extra.random() < (0.16 if type1 else 0.01):
        p.pump()
    if on_insulin and p.extra.random() < 0.015:
        p.iport()


def _other(p: _Patient) -> None:
    p.patient(18, 90)
    rng = p.rng
    for code in rng.sample(OTHER_CONDITIONS, rng.choice([0, 1, 1, 2])):
        p.condition(code, p.ago(100, 6000))
    if rng.random() < 0.4:
        p.hba1c(rng.uniform(34, 47), p.ago(5, 700))


def generate_population(
    out: Path,
    patients: int,
    *,
    today: date,
    seed: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``patients`` synthetic patients to ``out``; return the number of resources."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    extra = random.Random(seed + 1_000_003)  # noqa: S311
    writer = _Writer(out)
    try:
        for n in range(1, patients + 1):
            p = _Patient(rng, today, writer, extra)
            kind = rng.random()
            if kind < 0.33:
                _other(p)
            elif kind < 0.43:
                _diabetic(p, type1=True)
            else:
                _diabetic(p, type1=False)
            if progress is not None and n % 1000 == 0:
                progress(n)
    finally:
        writer.close()
    return writer.count
