"""Maintainer tool: regenerate the built-in ValueSet JSON files from the reference code list.

Run once by hand when the reference ``codes.csv`` changes, then review the diff and commit
the JSON files::

    python3 scripts/curate_value_sets.py CODES_CSV [--out valuesets]

It is not part of the package (it is in ``scripts/``, outside the wheel).
It is NOT used at build, test or run time: the service only reads the generated
``valuesets/*.json`` files, which are self-contained (every concept carries its source
codelist and verification level as extensions). The CSV path is a required argument on
purpose; nothing in the project may depend on where the reference material lives.

Row selection (applied to every value set):

* rows whose display says "review before use" (refset members that are not the concept),
  ``NOT_FOUND`` placeholders, rows whose ``verified`` column starts with ``UNVERIFIED``,
  and rows of non-terminology systems (conversion formula, UCUM units, informal BNF
  chapters, ODS / ONS organisation codes) are left out;
* each value set then keeps the rows of its reference category, minus deliberate,
  documented exclusions (or only an explicit list of codes for the narrow concepts).

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[1] / "valuesets"
BASE = "https://iport-cds.example.org/fhir/"
SD = BASE + "StructureDefinition/"
EXT_TERM = SD + "text-match-term"
EXT_RECORDED_IN = SD + "recorded-in"
EXT_SOURCE = SD + "source"
EXT_VERIFICATION = SD + "verification"
EXT_INSULIN_ACTION = SD + "insulin-action"
EXT_IMPLIED_UNIT = SD + "implied-unit"
VERSION = "2026-11-21"
PUBLISHER = "iport-cds project"

SNOMED = "http://snomed.info/sct"
DMD = "https://dmd.nhs.uk"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
MODEL_SYSTEM = "urn:manufacturer:model"

# Systems that are not terminologies for clinical record codes.
NON_CODE_SYSTEMS = frozenset(
    {
        "formula",
        "http://unitsofmeasure.org",
        "https://www.nhsbsa.nhs.uk/bnf(informal)",
        "https://fhir.nhs.uk/Id/ods-organization-code",
        "https://fhir.nhs.uk/Id/ons-geography-code(informal)",
    }
)

Row = dict[str, str]


@dataclass(frozen=True)
class Spec:
    """How one value set is cut out of the reference list."""

    id: str
    name: str
    title: str
    category: str  # prefix of the CSV ``concept`` column, e.g. "4."
    intro: str
    keep: frozenset[str] | None = None  # only these codes (None: the whole category)
    exclude: dict[str, str] = field(default_factory=dict)  # code -> reason (deliberate)
    terms: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # FHIR resource types searched for its codes (see valuesets.EXT_RECORDED_IN)
    recorded_in: tuple[str, ...] = ()


# --------------------------------------------------------------------------- display


_ANNOTATION_PREFIXES = (
    "CPRD",
    "syn.",
    "unit ",
    "IFCC, unit",
    "DCCT, unit",
    "ingredient-level",
    "older UK title",
    "ICD-10-CM",
    "WHO ICD-10",
    "IN",
    "parent observable",
    "Synthea",
    "Humulin 70/30",
    "disorder",
    "finding",
    "procedure",
    "physical object",
    "situation/finding",
    "observable",
    "product",
    "bolus",
    "basal",
    "premixed",
    "isophane/NPH",
    "mapping to",
    "Patton Medical",
    "impaired awareness",
    "hybrid closed loop",
    "UK extension",
)
_BRACKET_NOTE = re.compile(r"\s*\[(?:NB:|UK dm\+d|EMIS local)[^\]]*\]")
_LEGACY_VMP = re.compile(r"Legacy VMP ID \(VMP (?:previous|subsequent) to (\d+)\)")

# Displays the generic clean-up cannot get right.
DISPLAY_OVERRIDES = {
    "106892": "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML "
    "Injectable Suspension [Humulin]",
    "865098": "Insulin Lispro 100 UNT/ML Injectable Solution [Humalog]",
    "K120337": "i-port Advance injection port (FDA 510(k) K120337)",
    # Only named in descriptions (deliberately excluded rows), but keep those readable too.
    "67866001": "Insulin",
    "386810004": "Phobic disorder",
    "191720001": "Phobic anxiety / Phobic disorders",
    "309350005": "Diabetologist",
    "308755006": "Subcutaneous injection of insulin",
}


def _strip_trailing_annotation(text: str) -> str:
    """Drop trailing "( ... )" groups that are curator notes or semantic tags."""
    while text.endswith(")"):
        depth = 0
        for i in range(len(text) - 1, -1, -1):
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                depth -= 1
                if depth == 0:
                    break
        else:
            return text
        inner = text[i + 1 : -1]
        if not inner.startswith(_ANNOTATION_PREFIXES):
            return text
        text = text[:i].rstrip(" ;,")
    return text


def clean_display(row: Row) -> str:
    code = row["code"]
    if code in DISPLAY_OVERRIDES:
        return DISPLAY_OVERRIDES[code]
    text = row["display"].split(" | ", 1)[0]
    text = re.sub(r"^(?:VMP|AMP|VTM): ", "", text)
    text = _BRACKET_NOTE.sub("", text)
    text = text.split("; ", 1)[0] if row["system"] == "urn:fda:510k" else text
    return _strip_trailing_annotation(text.strip())


# --------------------------------------------------------------------- insulin action

_MIXED = ("premixed", "biphasic", "combined with fast-acting")
_BASAL = ("glp-1", "long-acting", "intermediate", "nph", "isophane")
_BOLUS = ("rapid-acting", "short-acting", "soluble", "regular", "fast-acting", "prandial")

# Codes whose text would mislead the keyword rules.
ACTION_OVERRIDES = {
    # Humulin 70/30 is a premix of isophane and regular insulin (Synthea calls it "basal").
    "106892": "mixed",
}


def _action_from_text(text: str) -> str:
    low = text.lower()
    if "unclassified" in low:
        return "unknown"
    if any(k in low for k in _MIXED):
        return "mixed"
    if any(k in low for k in _BASAL):
        return "basal"
    if any(k in low for k in _BOLUS):
        return "bolus"
    return "unknown"


def insulin_action(row: Row, by_code: dict[str, Row], by_ingredient: dict[str, str]) -> str:
    """basal / bolus / mixed / unknown, from the reference list's own classification.

    dm+d and SNOMED rows state an action profile; an ATC chemical takes its ATC group's
    (A10AB fast-acting, A10AC intermediate, A10AD premixed, A10AE long-acting); an RxNorm
    ingredient takes that of the same-named ingredient-level SNOMED row; a legacy VMP ID
    takes that of the VMP it names.
    """
    code = row["code"]
    if code in ACTION_OVERRIDES:
        return ACTION_OVERRIDES[code]
    display = row["display"]
    if row["system"] == ATC and len(code) > 5 and code[:5] in by_code:
        return insulin_action(by_code[code[:5]], by_code, by_ingredient)
    ingredient = _ingredient_name(row)
    if row["system"] == RXNORM and ingredient in by_ingredient:
        return by_ingredient[ingredient]
    legacy = _LEGACY_VMP.search(display)
    if legacy and legacy.group(1) in by_code:
        return insulin_action(by_code[legacy.group(1)], by_code, by_ingredient)
    if "action profile:" in display:
        profile = display.split("action profile:", 1)[1].split(" | ", 1)[0]
        return _action_from_text(profile)
    if " | " in display:  # SNOMED ingredient rows: "<term> | long-acting (basal)"
        return _action_from_text(display.split(" | ", 1)[1])
    return _action_from_text(display)


def _ingredient_name(row: Row) -> str:
    """Lower-case ingredient name: "insulin glargine (IN)" -> "insulin glargine"."""
    return clean_display(row).lower()


def ingredient_actions(rows: list[Row], by_code: dict[str, Row]) -> dict[str, str]:
    """Action of each ingredient-level SNOMED CT row of the insulin category, by name."""
    out: dict[str, str] = {}
    for row in rows:
        if (
            row["concept"].startswith("4. ")
            and "ingredient-level" in row["display"]
            and row["system"] == SNOMED
            and rule_exclusion(row) is None
        ):
            out.setdefault(_ingredient_name(row), insulin_action(row, by_code, {}))
    return out


def implied_unit(row: Row) -> str | None:
    """The unit a code's definition fixes: an explicit "unit ..." note first, then IFCC / DCCT."""
    text = row["display"]
    if "unit mmol/mol" in text:
        return "mmol/mol"
    if "unit %" in text or "DCCT" in text:
        return "%"
    if "IFCC" in text or "mmol/mol" in text:
        return "mmol/mol"
    return None


# ------------------------------------------------------------------------ selection


def rule_exclusion(row: Row) -> str | None:
    """Why the generic verification rule leaves a row out, or None to keep it."""
    if "review before use" in row["display"]:
        return "refset member marked 'review before use' (not the concept semantically)"
    if row["code"] == "NOT_FOUND":
        return "no code found (NOT_FOUND placeholder)"
    if row["system"] in NON_CODE_SYSTEMS:
        return "not a clinical code system (unit, formula, informal BNF chapter or organisation)"
    if row["verified"].startswith("UNVERIFIED"):
        return "UNVERIFIED in the reference list"
    return None


def expand(row: Row) -> list[Row]:
    """One concept per row, except the list of i-port Advance model numbers."""
    if row["system"] == MODEL_SYSTEM and ";" in row["code"]:
        out = []
        for code in (c.strip() for c in row["code"].split(";")):
            display = f"i-port Advance injection port, model number {code}"
            out.append({**row, "code": code, "display": display})
        return out
    return [row]


# ------------------------------------------------------------------------ the specs

_PARTIAL_HYPO_NOTE = (
    "Several rows come from a single secondary source (an NHS ECDS diabetes SNOMED index); "
    "they are kept as PARTIAL and marked so in their `verification` extension."
)

SPECS: tuple[Spec, ...] = (
    Spec(
        id="type-1-diabetes",
        name="Type1Diabetes",
        title="Type 1 diabetes mellitus",
        category="1.",
        intro=(
            "Diagnosis codes for **Type 1 diabetes mellitus**: the first population of the "
            "i-Port Advance commissioning position (Humber and North Yorkshire) and the "
            "population of the NICE insulin pump criteria it refers to. Mostly the NHS Digital "
            "Primary Care Domain refset DMTYPE1_COD as published in OpenCodelists, plus "
            "type-specific codes from the Exeter CPRD diabetes codelist and ICD-10 E10.x."
        ),
        terms=(
            "type 1 diabetes",
            "type 1 diabetes mellitus",
            "diabetes mellitus type 1",
            "diabetes type 1",
            "type i diabetes",
            "type i diabetes mellitus",
            "diabetes mellitus type i",
            "t1dm",
            "t1 diabetes",
        ),
    ),
    Spec(
        id="type-2-diabetes",
        name="Type2Diabetes",
        title="Type 2 diabetes mellitus",
        category="2.",
        intro=(
            "Diagnosis codes for **Type 2 diabetes mellitus**: the second population of the "
            "i-Port Advance commissioning position (device only if recommended by a diabetes "
            "specialist, plus one of the listed criteria). Mostly the NHS Digital Primary Care "
            "Domain refset DMTYPE2_COD (OpenCodelists), plus type-specific codes from the Exeter "
            "CPRD diabetes codelist and ICD-10 E11.x."
        ),
        exclude={
            "15777000": "prediabetes (Synthea pre-diabetes state), not type 2 diabetes",
            "703136005": "generic 'Diabetes mellitus in remission', not type-specific "
            "(a member of DMTYPE2_COD as published)",
        },
        terms=(
            "type 2 diabetes",
            "type 2 diabetes mellitus",
            "diabetes mellitus type 2",
            "diabetes type 2",
            "type ii diabetes",
            "type ii diabetes mellitus",
            "diabetes mellitus type ii",
            "t2dm",
            "t2 diabetes",
        ),
    ),
    Spec(
        id="hba1c",
        name="HbA1c",
        title="HbA1c (haemoglobin A1c) result",
        category="3.",
        intro=(
            "Observation codes for **HbA1c** results. The policy criterion is HbA1c above "
            "69 (the policy text says 'mmol/l'; HbA1c is reported in mmol/mol, IFCC) related to "
            "poor compliance, and the NICE pump criterion HbA1c 69 mmol/mol or above on MDI. "
            "UK GP systems record mostly SNOMED 999791000000106 (IFCC, mmol/mol); US data "
            "mostly LOINC 4548-4 (%).\n\n"
            "The `implied-unit` extension marks codes whose definition fixes the unit "
            "(IFCC -> mmol/mol; DCCT/NGSP -> %). Where it is absent the unit must be read from "
            "`Observation.valueQuantity`. Conversion: IFCC (mmol/mol) = (DCCT % - 2.15) x "
            "10.929 (Diabetes UK; 48 mmol/mol = 6.5 %, 53 = 7.0 %, 58 = 7.5 %)."
        ),
        exclude={
            "269823000": "an interpretation of diabetic control, not an HbA1c value",
        },
        notes=(
            "The three 'Substance concentration of haemoglobin A1c' observables are in the "
            "IFCCHBAM_COD refset (so normally reported in mmol/mol), but their display names "
            "no unit, so they carry no `implied-unit`.",
            "The UCUM unit rows and the conversion formula row of the reference list are "
            "not observation codes and are therefore not in this value set.",
        ),
    ),
    Spec(
        id="insulin",
        name="Insulin",
        title="Insulin products",
        category="4.",
        intro=(
            "Medication codes for **insulin** (dm+d VMP/AMP and legacy VMP IDs, "
            "ingredient-level SNOMED CT / dm+d product concepts, RxNorm, ATC). Used for the "
            "type 2 criterion 'on >1 injection of insulin a day' and to infer a multiple daily "
            "injection (basal-bolus) regimen, for which no regimen code exists.\n\n"
            "Each concept has an `insulin-action` extension: `bolus` (rapid-/short-acting, "
            "soluble/regular; BNF 6.1.1.1), `basal` (intermediate/NPH/isophane, long-acting, "
            "basal + GLP-1 combination; non-biphasic BNF 6.1.1.2), `mixed` (premixed/biphasic) "
            "or `unknown` (not classifiable: 'Insulin human', RxNorm 5856, ATC A10A, A10AF). It "
            "is taken from the action profile stated in the reference list (BNF chemical and "
            "Exeter basal/bolus map) or the ATC group name. Legacy VMP IDs take the display "
            "and action of the VMP they replaced or were replaced by.\n\n"
            "dm+d codes are listed under `https://dmd.nhs.uk`; they are SNOMED CT UK Drug "
            "Extension concepts and are also accepted under `http://snomed.info/sct`."
        ),
        exclude={
            "170747006": "a finding (diabetic on insulin), not an insulin product",
            "314194001": "a finding (on insulin and oral treatment), not an insulin product",
            "976361000000100": "a finding (on insulin and GLP-1 RA), not an insulin product",
            "161649006": "a history finding, not an insulin product",
            "708000007": "a finding that insulin was stopped, not an insulin product",
            "67866001": "a substance concept; use ECL << 67866001 via 'has specific active "
            "ingredient' on a terminology server instead",
        },
        notes=(
            "RxNorm 106892 (Humulin 70/30) is labelled 'basal' by Synthea but is a premix of "
            "isophane and regular insulin, so it is classed `mixed`.",
            "The Exeter map labels biphasic lispro/aspart 'Bolus insulin' and biphasic isophane "
            "'Intermediate insulin'; both are classed `mixed` here.",
            "RxNorm ingredients take the action of the same-named ingredient-level SNOMED CT "
            "row; ATC chemicals that of their ATC group.",
        ),
        terms=(
            "insulin",
            "lantus",
            "levemir",
            "tresiba",
            "toujeo",
            "abasaglar",
            "semglee",
            "novorapid",
            "novolog",
            "fiasp",
            "humalog",
            "lyumjev",
            "apidra",
            "actrapid",
            "humulin",
            "insulatard",
            "novomix",
            "trurapi",
            "admelog",
            "insuman",
            "hypurin",
            "xultophy",
            "suliqua",
        ),
    ),
    Spec(
        id="needle-phobia",
        recorded_in=("Observation",),
        name="NeedlePhobia",
        title="Needle phobia / fear of injections",
        category="5.",
        intro=(
            "**Needle phobia / fear of injections**: the criterion 'avoiding/missing insulin "
            "injections due to significant anxiety/needle phobia' (both type 1 and type 2).\n\n"
            "No SNOMED CT concept for needle phobia, fear of injections or "
            "blood-injection-injury phobia was found in any searched codelist or value set; "
            "the only specific code is ICD-10-CM F40.231 (US only). The text-match terms are "
            "therefore the main way this concept is found; deployments can add local codes in "
            "an extra value-set folder without code changes, and a clinician should confirm."
        ),
        keep=frozenset({"F40.231"}),
        exclude={
            "386810004": "'Phobic disorder' is too broad (nearest verified ancestor only)",
            "191720001": "'Phobic anxiety / phobic disorders' grouper is too broad",
            "F40.2": "WHO ICD-10 'Specific (isolated) phobias' is too broad",
            "F40.23": "ICD-10-CM 'Blood, injection, injury type phobia' also covers "
            "blood and injury phobia",
        },
        terms=(
            "needle phobia",
            "needle-phobia",
            "needle phobic",
            "needle-phobic",
            "fear of needles",
            "fear of injections",
            "injection phobia",
            "needle anxiety",
            "trypanophobia",
            "blood-injection-injury phobia",
        ),
    ),
    Spec(
        id="lipohypertrophy",
        recorded_in=("Observation",),
        name="Lipohypertrophy",
        title="Lipohypertrophy at insulin injection sites",
        category="6.",
        intro=(
            "**Lipohypertrophy**: the criterion 'injecting into lipo-hypertrophied areas "
            "despite support and advice to avoid these areas'. Only the finding of insulin "
            "lipohypertrophy is a code for this; 'despite support and advice' is not coded and "
            "needs clinician confirmation. No generic (non-insulin) lipohypertrophy concept "
            "was found."
        ),
        keep=frozenset({"238894004"}),
        exclude={
            "268517006": "injection-site monitoring, not a finding of lipohypertrophy",
            "398871001": "abnormal injection sites is not specifically lipohypertrophy",
            "398985007": "injection-site monitoring (normal), not a finding of lipohypertrophy",
            "819301000000105": "injection-site check declined: not a finding of lipohypertrophy",
            "819331000000104": "injection site not checked: not a finding of lipohypertrophy",
            "1996751000006101": "injection technique checked (EMIS local code): not a finding "
            "of lipohypertrophy",
        },
        terms=("lipohypertrophy", "lipo-hypertrophy", "lipohypertrophied"),
    ),
    Spec(
        id="disabling-hypoglycaemia",
        recorded_in=("Observation",),
        name="DisablingHypoglycaemia",
        title="Disabling hypoglycaemia / impaired awareness of hypoglycaemia",
        category="7.",
        intro=(
            "**Disabling hypoglycaemia**: the NICE pump criterion the policy refers to "
            "('repeated and unpredictable occurrence of hypoglycaemia that results in "
            "persistent anxiety about recurrence and is associated with a significant adverse "
            "effect on quality of life').\n\n"
            "No code for severe, recurrent or disabling hypoglycaemia was found. This set "
            "holds only codes that on their own indicate severe hypoglycaemia (hypoglycaemic "
            "coma or shock) or impaired awareness / unawareness of hypoglycaemia. Single "
            "hypoglycaemia events are in the `hypoglycaemia-event` value set; the text-match "
            "terms and clinician confirmation cover the rest."
        ),
        keep=frozenset(
            {
                "170766006",
                "120711000119108",
                "119831000119106",
                "421725003",
                "421437000",
                "314771006",
                "719216001",
                "360546002",
            }
        ),
        notes=(_PARTIAL_HYPO_NOTE,),
        terms=(
            "disabling hypoglycaemia",
            "disabling hypoglycemia",
            "severe hypoglycaemia",
            "severe hypoglycemia",
            "recurrent hypoglycaemia",
            "recurrent hypoglycemia",
            "impaired awareness of hypoglycaemia",
            "impaired awareness of hypoglycemia",
            "hypoglycaemia unawareness",
            "hypoglycemia unawareness",
            "hypoglycaemic unawareness",
        ),
    ),
    Spec(
        id="hypoglycaemia-event",
        recorded_in=("Observation",),
        name="HypoglycaemiaEvent",
        title="Hypoglycaemia (event or diagnosis)",
        category="7.",
        intro=(
            "**Hypoglycaemia** events and diagnoses that do not by themselves mean disabling "
            "hypoglycaemia. Repeated events can support (not prove) the NICE 'disabling "
            "hypoglycaemia' criterion; severe / impaired-awareness codes are in the "
            "`disabling-hypoglycaemia` value set."
        ),
        keep=frozenset(
            {
                "302866003",
                "237630007",
                "237633009",
                "237632004",
                "237635002",
                "84371000119108",
                "120731000119103",
                "E16.0",
                "E16.1",
                "E16.2",
            }
        ),
        exclude={
            "1373571000000102": "a distress-scale score (observable), not a hypoglycaemia event",
            "1957911000006107": "a history-of entry (EMIS local code) dated when it is written "
            "down at a review, not when an episode happened; two reviews are not two episodes",
            "E10.0 / E11.0": "not a single code; 'with coma' is not specific to hypoglycaemia "
            "(E10.0 / E11.0 are in the type 1 / type 2 diabetes value sets)",
        },
        notes=(_PARTIAL_HYPO_NOTE,),
    ),
    Spec(
        id="non-adherence",
        recorded_in=("Observation",),
        name="NonAdherence",
        title="Non-adherence to treatment as prescribed",
        category="8.",
        intro=(
            "**Non-adherence**: not taking treatment as prescribed. Supports the criteria "
            "'HbA1c > 69 related to poor compliance with treatment' and 'avoiding/missing "
            "insulin injections'. No diabetes- or insulin-specific non-compliance concept was "
            "found; the text-match terms help, and the link to HbA1c needs clinician "
            "confirmation."
        ),
        keep=frozenset(
            {"129834002", "275928001", "448176008", "7058009", "198321000000100", "Z91.14"}
        ),
        exclude={
            "25361000000103": "poor compliance with diabetic diet is not non-adherence to "
            "insulin / medication",
            "268519009": "poor control is an outcome, not non-adherence",
            "1290542000": "unintentional misuse of medication is not not-taking-as-prescribed",
        },
        terms=(
            "non-adherence",
            "nonadherence",
            "non-compliance",
            "noncompliance",
            "poor adherence",
            "poor compliance",
            "missing insulin doses",
            "omitting insulin",
        ),
    ),
    Spec(
        id="diabetes-specialist",
        recorded_in=("Observation",),
        name="DiabetesSpecialist",
        title="Diabetes specialist referral or review (supporting context only)",
        category="12.",
        intro=(
            "Referral to, review by, or being under the care of a **diabetes specialist** "
            "service (diabetologist, diabetes specialist nurse, diabetes clinic, structured "
            "education). **Supporting context only**: the type 2 criterion needs the device "
            "to be *recommended by* a diabetes specialist, which no code here records. A match "
            "shows specialist involvement and must never satisfy that criterion alone; a "
            "clinician should confirm the recommendation."
        ),
        exclude={
            "309350005": "'Diabetologist' is an occupation code for PractitionerRole.code, "
            "not a record of referral or review; match it on PractitionerRole instead",
        },
    ),
    Spec(
        id="iport-device",
        name="IPortDevice",
        title="i-Port Advance injection port",
        category="11.",
        intro=(
            "The **i-Port Advance** injection port itself (e.g. to see that a patient already "
            "uses one). **No verified dm+d code exists in the reference material** (AMP/AMPP "
            "for the 6 mm and 9 mm ports were not found; look them up in the NHSBSA dm+d "
            "browser and the Drug Tariff Part IXA and add them locally), and no generic SNOMED "
            "CT 'injection port' device concept was found.\n\n"
            "The entries here are not terminology codes: the FDA 510(k) clearance number "
            "K120337 and the four model numbers listed in it (their mapping to 6 mm / 9 mm "
            "and pack size is not stated in the source). They can only match device "
            "identifiers or model numbers. The text-match terms are the main way this "
            "concept is found."
        ),
        recorded_in=("Device", "DeviceUseStatement"),
        notes=(
            "Use: a completed i-Port order, an issued i-Port prescription, an assigned Device "
            "or a statement of use is i-Port use (`technology-kinds.json`); an active order is "
            "on order, not yet in use.",
        ),
        terms=("i-port", "iport", "i port", "i-port advance", "injection port"),
    ),
    Spec(
        id="insulin-pump",
        recorded_in=("Observation", "Device", "DeviceUseStatement"),
        name="InsulinPump",
        title="Insulin pump therapy (CSII)",
        category="10.",
        intro=(
            "**Insulin pump therapy** (continuous subcutaneous insulin infusion, CSII, "
            "including hybrid closed loop): the pump, its insertion or replacement, pump "
            "administration and pump education. The policy uses the i-Port as an alternative "
            "to insulin pump therapy, so a pump record is context for the decision."
        ),
        keep=frozenset(
            {
                "180178009",
                "846663002",
                "846662007",
                "1516031000000105",
                "1597751000000104",
                "1597761000000101",
                "69805005",
                "443263006",
            }
        ),
        exclude={
            "308755006": "subcutaneous injection of insulin (pen/syringe route), not a pump",
            "39543009": "any administration of insulin, not pump-specific",
            "1515601000000101": "a dose observable, not pump-specific",
            "769581000000107": "a dose observable, not pump-specific",
        },
        notes=(
            "No code for a basal-bolus / multiple-daily-injection regimen was found; infer MDI "
            "from co-prescription of basal and bolus insulin (see the `insulin` value set).",
            "Pumps and their supplies are recorded by product name (a Device's name; a "
            "prescription of pods, reservoirs or infusion sets) and no public codelist of their "
            "dm+d codes was found: the text-match terms add the pump product names in UK use, "
            "as their manufacturers name them (YpsoPump, Omnipod, t:slim, MiniMed, Accu-Chek "
            "Insight, Dana RS / Dana-i), and the supplies' generic names. A hybrid closed loop "
            "system is also a pump (`technology-kinds.json`), so a record of one counts here.",
        ),
        terms=(
            "insulin pump",
            "csii",
            "continuous subcutaneous insulin infusion",
            "hybrid closed loop",
            "patch pump",
            "ypsopump",
            "omnipod",
            "t slim",
            "minimed",
            "accu chek insight",
            "dana rs",
            "dana i",
            "insulin infusion set",
            "pump infusion set",
            "insulin pump reservoir",
            "pump reservoir",
        ),
    ),
)


# ------------------------------------------------------------------------- provenance

# The reference list cites some codes only as "a public source file", sometimes followed by
# the numbers of search-index hits, which name no codelist and cannot be followed. Provenance
# says so plainly instead, keeping what the file was.
_UNNAMED_SOURCE = "a public source file"
_INDEX_NUMBER = re.compile(r"\b\d{7,}\b(?:, )?")


def public_source(source: str) -> str:
    """A source as a reader can follow it: a named codelist, or "no public codelist; …"."""
    if _UNNAMED_SOURCE not in source:
        return source
    out = source.replace(_UNNAMED_SOURCE, "no public codelist; seen in third-party code")
    out = _INDEX_NUMBER.sub("", out).strip()
    for pattern, repl in (
        (r"\(\s*\)", ""),
        (r"\s+([;,)])", r"\1"),
        (r",\s*;", ";"),
        (r"\) and$", ")"),
        (r" and$", ""),
        (r",$", ""),
        (r"\),\s*\(", "; "),
        (r" {2,}", " "),
    ):
        out = re.sub(pattern, repl, out.strip())
    return out.strip()


# ------------------------------------------------------------------------- building


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {i}" for i in items)


def _short(row: Row) -> str:
    display = row["display"] if row["code"] == "NOT_FOUND" else clean_display(row)
    return f"`{row['code']}` {display}"


def build(spec: Spec, rows: list[Row], by_code: dict[str, Row]) -> dict[str, object]:
    by_ingredient = ingredient_actions(rows, by_code)
    category = [r for r in rows if r["concept"].startswith(spec.category + " ")]
    if not category:
        raise SystemExit(f"{spec.id}: no rows for category {spec.category!r}")
    codes_in_category = {r["code"] for r in category}
    for code in (spec.keep or frozenset()) | set(spec.exclude):
        if code not in codes_in_category:
            raise SystemExit(f"{spec.id}: code {code!r} is not in category {spec.category!r}")

    selected: list[Row] = []
    deliberate: list[str] = []
    by_rule: list[str] = []
    not_listed: list[str] = []
    for row in category:
        reason = rule_exclusion(row)
        if row["code"] in spec.exclude:
            deliberate.append(f"{_short(row)}: {spec.exclude[row['code']]}")
        elif reason is not None:
            if spec.keep is not None and row["code"] in spec.keep:
                raise SystemExit(f"{spec.id}: kept code {row['code']} fails the rule: {reason}")
            by_rule.append(f"{_short(row)} ({row['verified']}): {reason}")
        elif spec.keep is not None and row["code"] not in spec.keep:
            not_listed.append(_short(row))
        else:
            selected.extend(expand(row))

    includes: dict[str, list[dict[str, object]]] = {}
    seen: set[tuple[str, str]] = set()
    for row in selected:
        key = (row["system"], row["code"])
        if key in seen:
            raise SystemExit(f"{spec.id}: duplicate concept {key}")
        seen.add(key)
        ext: list[dict[str, str]] = [
            {"url": EXT_SOURCE, "valueString": row["source"]},
            {"url": EXT_VERIFICATION, "valueString": row["verified"]},
        ]
        if spec.id == "insulin":
            action = insulin_action(row, by_code, by_ingredient)
            ext.append({"url": EXT_INSULIN_ACTION, "valueCode": action})
        if spec.id == "hba1c":
            unit = implied_unit(row)
            if unit is not None:
                ext.append({"url": EXT_IMPLIED_UNIT, "valueCode": unit})
        display = clean_display(row)
        legacy = _LEGACY_VMP.search(row["display"])
        if legacy and legacy.group(1) in by_code:
            display = clean_display(by_code[legacy.group(1)])
        concept = {"code": row["code"], "display": display, "extension": ext}
        includes.setdefault(row["system"], []).append(concept)

    description = _description(spec, selected, deliberate, by_rule, not_listed)
    doc: dict[str, object] = {
        "resourceType": "ValueSet",
        "id": spec.id,
        "url": f"{BASE}ValueSet/{spec.id}",
        "version": VERSION,
        "name": spec.name,
        "title": spec.title,
        "status": "active",
        "date": VERSION,
        "publisher": PUBLISHER,
        "description": description,
    }
    if spec.terms:
        doc["extension"] = [{"url": EXT_TERM, "valueString": t} for t in spec.terms]
    if spec.recorded_in:
        doc["extension"] = [
            {"url": EXT_RECORDED_IN, "valueCode": t} for t in spec.recorded_in
        ] + doc.get("extension", [])
    doc["compose"] = {"include": [{"system": s, "concept": cs} for s, cs in includes.items() if cs]}
    return doc


def _description(
    spec: Spec,
    selected: list[Row],
    deliberate: list[str],
    by_rule: list[str],
    not_listed: list[str],
) -> str:
    parts = [spec.intro]
    sources = list(dict.fromkeys(r["source"] for r in selected))
    parts.append(
        "**Sources** (reference list `source` column; each concept repeats its own in the "
        "`source` extension):\n" + _bullets(sources)
    )
    n_verified = sum(1 for r in selected if r["verified"] == "VERIFIED")
    others = [f"`{r['code']}`: {r['verified']}" for r in selected if r["verified"] != "VERIFIED"]
    verification = (
        f"**Verification**: {n_verified} of {len(selected)} concepts VERIFIED in the reference "
        "list (seen in a public codelist or value set; not checked against a terminology "
        "server release)."
    )
    if others:
        verification += " Other verification levels:\n" + _bullets(others)
    parts.append(verification)
    if spec.notes:
        parts.append("**Notes**:\n" + _bullets(spec.notes))
    if deliberate:
        parts.append("**Deliberately excluded**:\n" + _bullets(deliberate))
    if not_listed:
        parts.append(
            "**Also in this reference category but belonging to another concept or value "
            "set**:\n" + _bullets(not_listed)
        )
    if by_rule:
        parts.append(
            "**Left out by the verification rule** (review-before-use refset members, "
            "NOT_FOUND placeholders, UNVERIFIED rows, non-code systems):\n" + _bullets(by_rule)
        )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("csv_path", type=Path, help="the reference codes.csv")
    parser.add_argument(
        "--out", type=Path, default=OUT_DIR, help="output folder (default: valuesets/)"
    )
    args = parser.parse_args(argv)
    with args.csv_path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["source"] = public_source(row["source"])
    by_code: dict[str, Row] = {}
    for row in rows:
        by_code.setdefault(row["code"], row)
    for spec in SPECS:
        doc = build(spec, rows, by_code)
        path = args.out / f"{spec.id}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
