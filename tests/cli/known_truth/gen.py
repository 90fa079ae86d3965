#!/usr/bin/env python3
"""A known-truth population, written by someone who had not seen the population code, from
the policy texts and docs/policy-interpretation.md; tests/cli/test_known_truth.py checks the
product's figures against it.

stdlib only, seeded, deterministic.  Writes, into the folder given as its argument (default:
next to this file):
  export/   Bulk FHIR NDJSON (Patient, Condition, Observation, MedicationRequest, Device,
            DeviceUseStatement, Procedure, DeviceRequest) + manifest.json
  people.csv            one row per Patient record (incl. stale duplicates) with the intended bands
  place.csv pcn.csv postcode_lsoa.csv lsoa_imd.csv   lookup tables
  expected.json         exact expected counts, computed from the intended labels only

Every person is built from a deliberate profile (see PROFILES); the per-policy band is
derived from the person's intended criterion states with the pathway expressions read
from docs/policy-interpretation.md (Kleene logic), never by running the product.
"""
import csv
import datetime as dt
import json
import os
import random
import sys
from collections import Counter, defaultdict

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "export")
SEED = 20261201
EXTRACT = dt.date(2026, 12, 1)
TRANSACTION_TIME = "2026-12-01T06:00:00Z"
R = random.Random(SEED)

SCT = "http://snomed.info/sct"
DMD = "https://dmd.nhs.uk"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
READ2 = "http://read.info/readv2"
LOINC = "http://loinc.org"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
LOCAL_ID = "https://example-gp-system.nhs.uk/Id/local-patient-number"
ETH_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
ETH_CS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategory"
CRIT_CS = "https://iport-cds.example.org/fhir/CodeSystem/iport-criteria"

# ---------------------------------------------------------------- lookups
PRACTICES = {  # ods: (name, place or None (not in place table), pcn code or None)
    "B81001": ("Beverley Road Surgery", "hull", "U10001"),
    "B81002": ("Newland Park Practice", "hull", "U10001"),
    "B81003": ("Anlaby Road Health Centre", "hull", "U10002"),
    "B82010": ("Harrogate Lane Surgery", "north-yorkshire", "U20001"),
    "B82011": ("Clifton Moor Medical Practice", "vale-of-york", "U30001"),
    "B83020": ("Driffield Medical Centre", "east-riding", "U40001"),
    "B84030": ("Grimsby Central Surgery", "north-east-lincolnshire", "U50001"),
    "B85040": ("Scunthorpe Riverside Practice", "north-lincolnshire", "U60001"),
    "B86050": ("Bridlington New Practice", None, "U40001"),  # missing from place table
    "B86051": ("Goole Temporary Branch", None, None),  # missing from place and PCN tables
}
PCNS = {"U10001": "Hull North PCN", "U10002": "Hull West PCN", "U20001": "Harrogate PCN",
        "U30001": "York Clifton PCN", "U40001": "East Riding Coastal PCN",
        "U50001": "Grimsby PCN", "U60001": "Scunthorpe PCN"}
NO_ODS_NAME = "Riverside Medical Centre"  # generalPractitioner with display only

POSTCODES = {  # normalised postcode -> lsoa ; lsoa -> quintile
    "HU12AB": "E01012801", "HU32AD": "E01012802", "HU54EF": "E01012803", "HU88GH": "E01012804",
    "HU67JL": "E01012805", "HU95LN": "E01012806", "HG12NP": "E01027701", "HG27QR": "E01027702",
    "YO304ST": "E01013401", "YO318UW": "E01013402", "YO258WX": "E01013001", "YO151YZ": "E01013002",
    "DN311AA": "E01013201", "DN327BB": "E01013202", "DN156AA": "E01013101", "DN172DD": "E01013102",
    "YO164EE": "E01013003", "DN146FF": "E01013003",
}
LSOA_IMD = {"E01012801": 1, "E01012802": 1, "E01012803": 2, "E01012804": 3, "E01012805": 1,
            "E01012806": 4, "E01027701": 5, "E01027702": 4, "E01013401": 5, "E01013402": 3,
            "E01013001": 2, "E01013002": 3, "E01013201": 1, "E01013202": 2, "E01013101": 2,
            "E01013102": 3, "E01013003": 2}
PRACTICE_POSTCODES = {  # postcodes near each practice
    "B81001": ["HU12AB", "HU32AD", "HU54EF"], "B81002": ["HU54EF", "HU88GH", "HU67JL"],
    "B81003": ["HU32AD", "HU95LN", "HU67JL"], "B82010": ["HG12NP", "HG27QR"],
    "B82011": ["YO304ST", "YO318UW"], "B83020": ["YO258WX", "YO151YZ"],
    "B84030": ["DN311AA", "DN327BB"], "B85040": ["DN156AA", "DN172DD"],
    "B86050": ["YO164EE", "YO151YZ"], "B86051": ["DN146FF"], None: ["HU12AB", "YO304ST"],
}
UNMATCHED_POSTCODES = ["HU99 9ZZ", "YO99 1QQ", "DN99 8XX", "ZZ99 3WZ"]

ETHNIC = [("A", "White - British", 70), ("B", "White - Irish", 2), ("C", "White - Any other White background", 6),
          ("D", "Mixed - White and Black Caribbean", 1), ("F", "Mixed - White and Asian", 1),
          ("H", "Asian or Asian British - Indian", 3), ("J", "Asian or Asian British - Pakistani", 3),
          ("K", "Asian or Asian British - Bangladeshi", 1), ("M", "Black or Black British - Caribbean", 1),
          ("N", "Black or Black British - African", 3), ("R", "Other Ethnic Groups - Chinese", 2),
          ("S", "Other Ethnic Groups - Any other ethnic group", 2), ("Z", "Not stated", 5)]

FIRST_F = ["Amelia", "Olivia", "Isla", "Ava", "Mia", "Grace", "Freya", "Lily", "Sophie", "Emily", "Ruth", "Joan",
           "Priya", "Aisha", "Mei", "Zainab", "Chloe", "Hannah", "Margaret", "Susan"]
FIRST_M = ["Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Thomas", "James", "David", "Peter",
           "Imran", "Ravi", "Kwame", "Wei", "Tomasz", "Liam", "Callum", "Brian", "Keith"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Wilson", "Walker", "Wright", "Robinson", "Thompson", "Hughes",
        "Khan", "Patel", "Ali", "Nowak", "Chen", "Okafor", "Clarke", "Wood", "Hall", "Green", "Harrison", "Atkinson"]


def nhs_number(n):
    """A valid-checksum NHS number in the 999 test range, from a counter."""
    while True:
        base = "999" + f"{n:06d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(base))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return base + str(check)
        n += 500000


def day(days_ago):
    return (EXTRACT - dt.timedelta(days=days_ago)).isoformat()


def birth_date(age):
    # birthday between 1 Apr and 31 Oct: the age is the same on any day 1 Dec 2026 .. 31 Mar 2027
    m = R.randint(4, 10)
    d = R.randint(1, 28)
    y = EXTRACT.year - age  # birthday (Apr-Oct) already passed by 1 Dec
    return dt.date(y, m, d).isoformat()


def band_age(age):
    if age is None:
        return "unknown"
    if age < 12:
        return "0-11"
    if age < 18:
        return "12-17"
    if age < 40:
        return "18-39"
    if age < 65:
        return "40-64"
    return "65+"


# ---------------------------------------------------------------- Kleene
def AND(*xs):
    if "N" in xs:
        return "N"
    if all(x == "M" for x in xs):
        return "M"
    return "U"


def OR(*xs):
    if "M" in xs:
        return "M"
    if all(x == "N" for x in xs):
        return "N"
    return "U"


def NOT(x):
    return {"M": "N", "N": "M"}.get(x, "U")


# criterion state: "M" met, "N" not met, "U" unknown not confirmable,
# "Cj" unknown, confirmable and a judgement (confirmation-only rule, or evidence in the record),
# "Cf" unknown, confirmable but a fact with nothing in the record (pregnancy, a device in use, ...)

def criteria(p):
    """Intended criterion states for person p (dict of facts)."""
    c = {}
    age = p["age"]
    c["age12"] = "U" if age is None else ("M" if age >= 12 else "N")
    c["age18"] = "U" if age is None else ("M" if age >= 18 else "N")
    t1 = p["dx"] == "t1" and p["dx_coding"] != "read_only"
    t2 = p["dx"] == "t2"
    c["t1"] = "M" if t1 else "N"
    c["t2"] = "M" if t2 else "N"
    inwin = [(d, v) for d, v in p["hba1c"] if d <= 300]
    latest = min(inwin)[1] if inwin else None
    ins = p["insulin"]
    on_pump = p["pump"] in ("pump", "hcl")
    conf = p["conf"]
    if not inwin:
        all69 = "U"
    elif any(v < 69 for _, v in inwin):
        all69 = "N"
    else:
        all69 = "M"
    mdi = "M" if ins == "mdi" else ("U" if ins is None else "N")
    if on_pump:
        c["hba1c_mdi"] = "U"
    else:
        c["hba1c_mdi"] = AND(all69, mdi)
    if "disabling-hypoglycaemia" in conf:
        c["disabling"] = "M" if conf["disabling-hypoglycaemia"] else "N"
    else:
        c["disabling"] = "Cj" if p["ia"] else "Cf"
    if "mdi-impractical" in conf:
        c["mdi_imp"] = "M" if conf["mdi-impractical"] else "N"
    else:
        c["mdi_imp"] = "Cj"
    if "diabetes-specialist-recommendation" in conf:
        c["spec"] = "M" if conf["diabetes-specialist-recommendation"] else "N"
    else:
        c["spec"] = "Cj"
    c["needle"] = "M" if p["np"] else "Cf"
    c["lipo"] = "M" if p["lipo"] else "Cf"
    if latest is None:
        c["adh"] = "U"
    elif latest <= 69:
        c["adh"] = "N"
    else:
        c["adh"] = "M" if p["nonadh"] else "Cf"
    c["on_ins"] = "M" if ins else "U"
    c["gt1"] = "U" if ins is None else ("N" if ins == "basal_od" else "M")
    c["h58"] = "U" if latest is None else ("M" if latest >= 58 else "N")
    c["csii"] = "M" if on_pump else "Cf"
    c["rt"] = "M" if (p["cgm"] == "rt" or p["pump"] == "hcl") else "Cf"
    c["is"] = "M" if p["cgm"] == "is" else "Cf"
    c["pregnant"] = "M" if p["pregnant"] else "Cf"
    c["planning"] = "Cf"
    return c


def outcome(policy, c):
    g = lambda k: c[k] if c[k] in ("M", "N") else "U"  # noqa: E731
    npc = OR(AND(g("age12"), OR(g("disabling"), g("hba1c_mdi"))), AND(NOT(g("age12")), g("mdi_imp")))
    if policy == "iport-advance":
        p1 = AND(g("t1"), g("on_ins"), npc, OR(g("mdi_imp"), g("needle"), g("adh"), g("lipo")))
        p2 = AND(g("t2"), g("on_ins"), g("spec"), OR(g("gt1"), g("mdi_imp"), g("needle"), g("adh"), g("lipo")))
        return OR(p1, p2)
    if policy == "nice-ta151":
        return AND(g("t1"), npc)
    if policy == "nice-ta943":
        tech = OR(g("csii"), g("rt"), g("is"))
        adult = AND(g("t1"), g("age18"), OR(g("h58"), g("disabling")), tech)
        child = AND(g("t1"), NOT(g("age18")))
        preg = AND(g("t1"), OR(g("pregnant"), g("planning")))
        return OR(adult, child, preg)
    raise ValueError(policy)


def band(policy, p, strict=False):
    if not p["in_cohort"][policy]:
        return "not in cohort"
    if policy in ("iport-advance", "nice-ta151") and p["pump"] in ("pump", "hcl"):
        return "already using"
    if policy == "iport-advance" and p["iport"]:
        return "already using"
    if policy == "nice-ta943" and p["pump"] == "hcl":
        return "already using"
    c = criteria(p)
    o = outcome(policy, c)
    if o == "M":
        return "meets"
    if o == "N":
        return "does not meet"
    if not strict:  # docs/sandbox.md: confirm every confirmable unknown, evaluate again
        c2 = {k: ("M" if v in ("Cj", "Cf") else v) for k, v in c.items()}
        return "potentially eligible" if outcome(policy, c2) == "M" else "data missing"
    # strict: one clinician judgement away (PATIENT_VIEW_SPEAKS definition)
    for k, v in c.items():
        if v == "Cj":
            c2 = dict(c)
            c2[k] = "M"
            if outcome(policy, c2) == "M":
                return "potentially eligible"
    return "data missing"


# ---------------------------------------------------------------- profiles
# name: (count, dx, dx_coding options, age range(s), dict of facts, why)
def prof(count, dx, ages, why, **facts):
    return dict(count=count, dx=dx, ages=ages, why=why, facts=facts)


H69 = ("high", 70, 92)    # every in-window HbA1c >= 70
H58 = ("mid", 58, 66)     # 58..66
HLOW = ("low", 46, 56)    # < 58
PROFILES = {
    "t1-hcl": prof(18, "t1", [(4, 11), (12, 17), (18, 70)], "type 1 using a hybrid closed loop (Device, DeviceUseStatement or Omnipod 5 pods issued)", insulin="mdi", h=H58, pump="hcl"),
    "t1-pump": prof(10, "t1", [(19, 70)], "type 1 adult on a (non-HCL) insulin pump", insulin="mdi", h=H58, pump="pump"),
    "t1-pump-lowa1c": prof(4, "t1", [(19, 70)], "type 1 adult on a (non-HCL) pump, HbA1c < 58", insulin="mdi", h=HLOW, pump="pump"),
    "t1-pump-child": prof(4, "t1", [(6, 16)], "type 1 child/young person on a (non-HCL) pump", insulin="mdi", h=H58, pump="pump"),
    "t1-iport-reason": prof(16, "t1", [(19, 80)], "type 1 adult, every HbA1c >= 69 on basal-bolus MDI, and a current i-Port reason (needle phobia / lipohypertrophy / HbA1c>69 with non-adherence); no CGM", insulin="mdi", h=H69, reason=True),
    "t1-iport-reason-cgm": prof(6, "t1", [(19, 80)], "as t1-iport-reason with real-time CGM (Dexcom) issued", insulin="mdi", h=H69, reason=True, cgm="rt"),
    "t1-iport-reason-teen": prof(4, "t1", [(12, 17)], "type 1 aged 12-17, every HbA1c >= 69 on MDI, current needle phobia", insulin="mdi", h=H69, reason=True),
    "t1-ta151-meets": prof(14, "t1", [(19, 85)], "type 1 adult, every HbA1c >= 69 on MDI, no i-Port reason recorded (MDI impractical is a judgement); no CGM", insulin="mdi", h=H69),
    "t1-ta151-meets-libre": prof(10, "t1", [(19, 85)], "as t1-ta151-meets with FreeStyle Libre 2 sensors issued", insulin="mdi", h=H69, cgm="is"),
    "t1-lowa1c-low": prof(20, "t1", [(19, 88)], "type 1 adult, HbA1c < 58 on MDI, nothing else recorded (disabling hypoglycaemia could be confirmed)", insulin="mdi", h=HLOW),
    "t1-lowa1c-mid": prof(20, "t1", [(19, 88)], "type 1 adult, HbA1c 58-66 on MDI, nothing else recorded; no CGM", insulin="mdi", h=H58),
    "t1-lowa1c-mid-cgm": prof(12, "t1", [(19, 88)], "type 1 adult, HbA1c 58-66 on MDI with real-time CGM issued (meets TA943 1.1)", insulin="mdi", h=H58, cgm="rt"),
    "t1-lowa1c-low-cgm": prof(8, "t1", [(19, 88)], "type 1 adult, HbA1c < 58 on MDI with Libre 2 issued", insulin="mdi", h=HLOW, cgm="is"),
    "t1-ia-needle": prof(8, "t1", [(19, 75)], "type 1 adult, HbA1c 58-66, impaired awareness of hypoglycaemia recorded (judgement with evidence) and a current needle phobia", insulin="mdi", h=H58, ia=True, np=True),
    "t1-child": prof(12, "t1", [(3, 11)], "type 1 child under 12 on MDI (MDI impractical is a judgement)", insulin="mdi", h=H58),
    "t1-child-confirmed": prof(2, "t1", [(5, 11)], "type 1 child under 12, clinician confirmed MDI impractical", insulin="mdi", h=H58, conf={"mdi-impractical": True}),
    "t1-no-insulin-rx": prof(6, "t1", [(20, 60)], "type 1 adult, HbA1c >= 69 but no insulin prescription in the GP record (hospital-prescribed)", insulin=None, h=H69),
    "t1-no-birthdate": prof(3, "t1", [None], "type 1 with no birth date (age unknown) on MDI, HbA1c >= 69", insulin="mdi", h=H69),
    "t1-hypo-denied-low": prof(8, "t1", [(19, 80)], "type 1 adult, HbA1c < 58, clinician recorded disabling hypoglycaemia = false", insulin="mdi", h=HLOW, conf={"disabling-hypoglycaemia": False}),
    "t1-hypo-denied-mid-cgm": prof(4, "t1", [(19, 80)], "type 1 adult, HbA1c 58-66 with Libre 2, disabling hypoglycaemia = false", insulin="mdi", h=H58, cgm="is", conf={"disabling-hypoglycaemia": False}),
    "t1-no-recent-a1c-denied": prof(5, "t1", [(19, 80)], "type 1 adult, last HbA1c 20 months ago, disabling hypoglycaemia = false", insulin="mdi", h=("old", 60, 80), conf={"disabling-hypoglycaemia": False}),
    "t1-premixed": prof(3, "t1", [(40, 85)], "type 1 adult on premixed insulin twice a day (not MDI), HbA1c >= 69", insulin="premixed_bd", h=H69),
    "t1-iport-user": prof(5, "t1", [(19, 70)], "type 1 adult already using an i-Port (DeviceUseStatement / Device / i-Port issued), HbA1c >= 69 on MDI", insulin="mdi", h=H69, iport=True),
    "t1-pregnant": prof(2, "t1", [(24, 36)], "type 1 woman, currently pregnant (77386006), HbA1c < 58, no CGM", insulin="mdi", h=HLOW, pregnant=True, sex="female"),
    "t1-read-text": prof(6, "t1", [(19, 80)], "type 1 coded in Read v2 (C10E.) with the text 'Type 1 diabetes mellitus' (recognised by term), every HbA1c >= 69 on MDI", insulin="mdi", h=H69, dx_coding="read_text"),
    "t1-read-only": prof(4, "t1", [(19, 80)], "type 1 coded ONLY in Read v2 (C108. 'Insulin dependent diabetes mellitus'), not in the value sets: not in any cohort, a data-quality count", insulin="mdi", h=H69, dx_coding="read_only"),
    "t1-deceased": prof(8, "t1", [(30, 85)], "type 1, deceased before the extract date: excluded", insulin="mdi", h=H69, deceased=True),
    "t1-unregistered": prof(5, "t1", [(19, 70)], "type 1 with no registered practice (no generalPractitioner): excluded", insulin="mdi", h=H69, unregistered=True),
    # type 2 (i-Port cohort only)
    "t2-no-insulin": prof(50, "t2", [(35, 90)], "type 2, no insulin (diet / oral agents): i-Port on-insulin unknown", insulin=None, h=("any", 45, 80)),
    "t2-bd": prof(20, "t2", [(35, 85)], "type 2 on insulin >1 injection a day, no specialist recommendation recorded (a judgement)", insulin="mdi", h=("any", 55, 85)),
    "t2-bd-spec": prof(6, "t2", [(35, 85)], "type 2 on insulin twice daily, specialist recommendation confirmed", insulin="bd", h=("any", 55, 85), conf={"diabetes-specialist-recommendation": True}),
    "t2-basal-od": prof(10, "t2", [(40, 88)], "type 2 on once-daily basal insulin only, no reason, no specialist", insulin="basal_od", h=("any", 55, 85)),
    "t2-basal-od-np": prof(4, "t2", [(40, 88)], "type 2 on once-daily basal insulin with a current needle phobia, no specialist yet", insulin="basal_od", h=("any", 55, 85), np=True),
    "t2-spec-false": prof(5, "t2", [(40, 88)], "type 2 on insulin twice daily, specialist recommendation recorded false", insulin="bd", h=("any", 55, 85), conf={"diabetes-specialist-recommendation": False}),
    "t2-pump": prof(2, "t2", [(40, 70)], "type 2 on an insulin pump", insulin="mdi", h=H58, pump="pump"),
    "t2-deceased": prof(3, "t2", [(60, 90)], "type 2 deceased: excluded", insulin="bd", h=H58, deceased=True),
    "t2-unregistered": prof(3, "t2", [(40, 80)], "type 2 with no registered practice: excluded", insulin="bd", h=H58, unregistered=True),
    # no diabetes
    "no-diabetes": prof(140, None, [(0, 11), (12, 17), (18, 39), (40, 64), (65, 95)], "no diabetes (other conditions or none)", insulin=None, h=None),
    "no-diabetes-prediabetes": prof(6, None, [(40, 80)], "prediabetes only (not diabetes)", insulin=None, h=("any", 42, 47)),
    "no-diabetes-deceased": prof(4, None, [(50, 95)], "no diabetes, deceased", insulin=None, h=None, deceased=True),
}

NEEDLE_PHOBIA_FORMS = ["np-text-condition", "np-icd-observation", "lipo", "adherence"]


def main():
    os.makedirs(OUT, exist_ok=True)
    people = []  # winning / unique persons
    n = 0
    nhs_counter = 100000
    for pname, pr in PROFILES.items():
        for i in range(pr["count"]):
            n += 1
            f = pr["facts"]
            rng = pr["ages"][i % len(pr["ages"])]
            age = None if rng is None else R.randint(rng[0], rng[1])
            sex = f.get("sex") or R.choice(["male", "female"])
            p = dict(pid=f"pt-{n:04d}", profile=pname, why=pr["why"], dx=pr["dx"],
                     dx_coding=f.get("dx_coding") or R.choice(["snomed", "snomed", "snomed", "icd10", "text"]),
                     age=age, sex=sex, insulin=f.get("insulin"), pump=f.get("pump"), cgm=f.get("cgm"),
                     iport=bool(f.get("iport")), np=bool(f.get("np")), lipo=False, nonadh=False,
                     ia=bool(f.get("ia")), conf=dict(f.get("conf") or {}), pregnant=bool(f.get("pregnant")),
                     deceased=bool(f.get("deceased")), unregistered=bool(f.get("unregistered")))
            if pr["dx"] is None:
                p["dx_coding"] = None
            # HbA1c
            h = f.get("h")
            hb = []
            if h:
                kind, lo, hi = h
                if kind == "old":
                    hb = [(R.randint(560, 650), R.randint(lo, hi))]
                else:
                    for _ in range(R.randint(1, 3)):
                        hb.append((R.randint(30, 240), R.randint(lo, hi)))
                    if R.random() < 0.5:  # an older result outside the 12-month window
                        hb.append((R.randint(420, 700), R.randint(45, 95)))
            p["hba1c"] = hb
            # i-Port reasons
            if f.get("reason"):
                form = NEEDLE_PHOBIA_FORMS[i % 4] if pname != "t1-iport-reason-teen" else "np-text-condition"
                if form.startswith("np"):
                    p["np"] = True
                    p["np_form"] = form
                elif form == "lipo":
                    p["lipo"] = True
                else:
                    p["nonadh"] = True
                    # make sure the latest in-window HbA1c is > 69 (H69 gives 70+)
            if p["np"] and "np_form" not in p:
                p["np_form"] = R.choice(["np-text-condition", "np-icd-observation"])
            # gender unknown for a couple of no-diabetes people
            if pname == "no-diabetes" and i in (3, 77):
                p["sex"] = "unknown"
            people.append(p)

    # registration, practice, postcode, ethnicity, NHS number
    ods_codes = [k for k in PRACTICES]
    weights = [14, 12, 12, 10, 10, 10, 9, 9, 5, 4]
    for idx, p in enumerate(people):
        if p["unregistered"]:
            p["practice"] = None
            p["practice_kind"] = "none"
        elif idx % 37 == 5:
            p["practice"] = None
            p["practice_kind"] = "no-ods"
        else:
            p["practice"] = R.choices(ods_codes, weights)[0]
            p["practice_kind"] = "ods"
        r = R.random()
        pcs = PRACTICE_POSTCODES.get(p["practice"], PRACTICE_POSTCODES[None])
        if r < 0.035:
            p["postcode_written"] = None
        elif r < 0.075:
            p["postcode_written"] = R.choice(UNMATCHED_POSTCODES)
        else:
            pc = R.choice(pcs)
            style = R.random()
            spaced = pc[:-3] + " " + pc[-3:]
            if style < 0.6:
                w = spaced
            elif style < 0.75:
                w = pc
            elif style < 0.9:
                w = spaced.lower()
            else:
                w = "  " + pc.lower() + " "
            p["postcode_written"] = w
        p["ethnic"] = None if R.random() < 0.1 else R.choices(ETHNIC, [e[2] for e in ETHNIC])[0]
        nhs_counter += R.randint(1, 40)
        p["nhs"] = nhs_number(nhs_counter)
        p["local_id"] = f"L{700000 + idx}"

    # two people with no NHS number (matched by the GP system's local number)
    no_nhs = [p for p in people if p["profile"] in ("t1-lowa1c-mid", "t2-bd")][:2]
    for p in no_nhs:
        p["nhs"] = None

    # duplicates: 15 NHS-number pairs (6 movers) + the 2 local-number pairs
    cand = [p for p in people if not p["deceased"] and not p["unregistered"] and p["nhs"]
            and p["practice_kind"] == "ods" and p["dx"] in ("t1", "t2") and p["profile"] != "t1-read-only"]
    R.shuffle(cand)
    dup_of = cand[:15]
    for k, p in enumerate(dup_of):
        p["dup"] = "nhs"
        p["mover"] = k < 6
    for p in no_nhs:
        p["dup"] = "local"
        p["mover"] = False

    for p in people:
        p["place"] = "unknown"
        p["pcn"] = "unknown"
        if p["practice_kind"] == "ods":
            name, place, pcn = PRACTICES[p["practice"]]
            p["place"] = place or "unknown"
            p["pcn"] = pcn or "unknown"
        if p["practice_kind"] == "no-ods":
            p["practice_key"] = "(no ODS code)"
        elif p["practice_kind"] == "none":
            p["practice_key"] = "(not registered)"
        else:
            p["practice_key"] = p["practice"]
        w = p["postcode_written"]
        if w is None:
            p["imd"] = "unknown"
            p["postcode_status"] = "none"
        else:
            norm = w.replace(" ", "").upper()
            if norm in POSTCODES:
                p["imd"] = str(LSOA_IMD[POSTCODES[norm]])
                p["postcode_status"] = "matched"
            else:
                p["imd"] = "unknown"
                p["postcode_status"] = "unmatched"
        p["age_band"] = band_age(p["age"])
        p["eth_key"] = p["ethnic"][0] if p["ethnic"] else "unknown"
        alive_reg = not p["deceased"] and not p["unregistered"]
        p["in_cohort"] = {
            "iport-advance": alive_reg and (criteria(p)["t1"] == "M" or p["dx"] == "t2"),
            "nice-ta151": alive_reg and criteria(p)["t1"] == "M",
            "nice-ta943": alive_reg and criteria(p)["t1"] == "M",
        }

    # ---------------------------------------------------------- FHIR
    res = defaultdict(list)
    counter = Counter()

    def rid(kind):
        counter[kind] += 1
        return f"{kind.lower()}-{counter[kind]:05d}"

    def subj(pid):
        return {"reference": f"Patient/{pid}"}

    def patient_resource(p, pid, stale=False):
        gp = []
        if p["practice_kind"] == "ods":
            code = p["practice"]
            if stale and p.get("mover"):
                code = p["old_practice"]
            gp = [{"type": "Organization", "identifier": {"system": ODS, "value": code}, "display": PRACTICES[code][0]}]
        elif p["practice_kind"] == "no-ods":
            gp = [{"type": "Organization", "display": NO_ODS_NAME}]
        ident = []
        if p["nhs"]:
            ident.append({"system": NHS, "value": p["nhs"] if (stale or R.random() < 0.8) else f"{p['nhs'][:3]} {p['nhs'][3:6]} {p['nhs'][6:]}"})
        ident.append({"system": LOCAL_ID, "value": p["local_id"]})
        first = R.choice(FIRST_F if p["sex"] == "female" else FIRST_M)
        r = {"resourceType": "Patient", "id": pid,
             "meta": {"lastUpdated": ("2021-03-0%dT10:00:00Z" % R.randint(1, 9)) if stale else f"2026-{R.randint(6, 11):02d}-{R.randint(10, 28)}T09:30:00Z"},
             "identifier": ident,
             "name": [{"use": "official", "family": p.setdefault("family", R.choice(LAST)), "given": [p.setdefault("given", first)]}]}
        if p["sex"] != "unknown":
            r["gender"] = p["sex"]
        if p["age"] is not None:
            r["birthDate"] = p.setdefault("dob", birth_date(p["age"]))
        if p["ethnic"]:
            code, disp, _ = p["ethnic"]
            r["extension"] = [{"url": ETH_URL, "valueCodeableConcept": {"coding": [{"system": ETH_CS, "code": code, "display": disp}]}}]
        pc = p["postcode_written"]
        if stale and p.get("mover"):
            pc = p["old_postcode"]
        if pc is not None:
            r["address"] = [{"use": "home", "line": [f"{R.randint(1, 200)} {R.choice(['Church', 'Mill', 'Station', 'Park', 'High'])} Street"], "postalCode": pc}]
        if p["deceased"]:
            if int(p["pid"][3:]) % 2:
                r["deceasedBoolean"] = True
            else:
                r["deceasedDateTime"] = day(R.randint(30, 900)) + "T04:00:00+00:00"
        if gp:
            r["generalPractitioner"] = gp
        return r

    for p in people:
        if p.get("mover"):
            other = [c for c in PRACTICES if c != p["practice"] and PRACTICES[c][1] and PRACTICES[c][1] != p["place"]]
            p["old_practice"] = R.choice(other)
            op = PRACTICE_POSTCODES[p["old_practice"]][0]
            p["old_postcode"] = op[:-3] + " " + op[-3:]
            p["old_place"] = PRACTICES[p["old_practice"]][1]
        res["Patient"].append(patient_resource(p, p["pid"]))
        if p.get("dup"):
            p["stale_pid"] = "pt-old-" + p["pid"][3:]
            st = patient_resource(p, p["stale_pid"], stale=True)
            if p["dup"] == "local":
                st["identifier"] = [{"system": LOCAL_ID, "value": p["local_id"]}]
            res["Patient"].append(st)

    def cond(pid, coding, text, days_ago, status="active"):
        c = {"resourceType": "Condition", "id": rid("Condition"),
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
             "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
             "code": {}, "subject": subj(pid), "recordedDate": day(days_ago)}
        if coding:
            c["code"]["coding"] = coding
        if text:
            c["code"]["text"] = text
        res["Condition"].append(c)

    def obs(pid, coding, days_ago, value=None, text=None, cat="exam"):
        o = {"resourceType": "Observation", "id": rid("Observation"), "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": cat}]}],
             "code": {"coding": coding} if coding else {}, "effectiveDateTime": day(days_ago) + "T09:10:00Z"}
        if text:
            o["code"]["text"] = text
        if pid is not None:
            o["subject"] = subj(pid)
        if value is not None:
            o.update(value)
        res["Observation"].append(o)

    def hba1c(pid, days_ago, v):
        if R.random() < 0.8:
            coding = [{"system": SCT, "code": "1049321000000109", "display": "Haemoglobin A1c level (monitoring ranges) - IFCC standardised"}]
        else:
            coding = [{"system": LOINC, "code": "59261-8", "display": "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol"}]
        obs(pid, coding, days_ago, {"valueQuantity": {"value": v, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}}, "HbA1c level (IFCC)", "laboratory")

    def medreq(pid, coding, text, dosage_text, days_ago, timing=None, status="active", system=None):
        m = {"resourceType": "MedicationRequest", "id": rid("MedicationRequest"), "status": status, "intent": "order",
             "medicationCodeableConcept": {"text": text}, "subject": subj(pid), "authoredOn": day(days_ago)}
        if coding:
            m["medicationCodeableConcept"]["coding"] = [{"system": system or R.choice([SCT, DMD]), "code": coding, "display": text}]
        if dosage_text or timing:
            d = {}
            if dosage_text:
                d["text"] = dosage_text
            if timing:
                d["timing"] = {"repeat": timing}
            m["dosageInstruction"] = [d]
        res["MedicationRequest"].append(m)

    BASAL = [("11933011000001106", "Lantus 100units/ml solution for injection 3ml pre-filled SoloStar pens (Sanofi)"),
             ("21930011000001100", "Tresiba FlexTouch 100units/ml solution for injection 3ml pre-filled pens (Novo Nordisk Ltd)"),
             ("7589411000001100", "Levemir FlexPen 100units/ml solution for injection 3ml pre-filled pens (Novo Nordisk Ltd)")]
    BOLUS = [("3282211000001106", "NovoRapid FlexPen 100units/ml solution for injection 3ml pre-filled pens (Novo Nordisk Ltd)"),
             ("34043011000001106", "Fiasp FlexTouch 100units/ml solution for injection 3ml pre-filled pens (Novo Nordisk Ltd)"),
             ("3284311000001105", "Humalog 100units/ml solution for injection 3ml cartridges (Eli Lilly and Company Ltd)")]
    MIXED = ("3277211000001104", "NovoMix 30 FlexPen 100units/ml suspension for injection 3ml pre-filled pens (Novo Nordisk Ltd)")

    for p in people:
        pid = p["pid"]
        # diagnosis
        # every record dated after birth (a record dated before birth meets no criterion)
        max_days = 9000 if p["age"] is None else min(9000, p["age"] * 365 - 60)
        dxd = R.randint(min(400, max_days), max_days) if max_days > 0 else 0
        if p["dx"] == "t1":
            form = p["dx_coding"]
            if form == "snomed":
                cond(pid, [{"system": SCT, "code": R.choice(["46635009", "46635009", "313435000"]), "display": "Type 1 diabetes mellitus"}], None, dxd)
            elif form == "icd10":
                cond(pid, [{"system": ICD10, "code": "E10", "display": "Type 1 diabetes mellitus"}], None, dxd)
            elif form == "text":
                cond(pid, None, R.choice(["Type 1 diabetes mellitus", "T1DM", "Diabetes mellitus type 1"]), dxd)
            elif form == "read_text":
                cond(pid, [{"system": READ2, "code": "C10E.", "display": "Type 1 diabetes mellitus"}], "Type 1 diabetes mellitus", dxd)
            elif form == "read_only":
                cond(pid, [{"system": READ2, "code": "C108.", "display": "Insulin dependent diabetes mellitus"}], None, dxd)
        elif p["dx"] == "t2":
            form = p["dx_coding"]
            if form == "icd10":
                cond(pid, [{"system": ICD10, "code": "E11", "display": "Type 2 diabetes mellitus"}], None, dxd)
            elif form == "text":
                cond(pid, None, R.choice(["Type 2 diabetes mellitus", "T2DM"]), dxd)
            else:
                cond(pid, [{"system": SCT, "code": R.choice(["44054006", "44054006", "237599002"]), "display": "Diabetes mellitus type 2"}], None, dxd)
        else:
            if p["profile"] == "no-diabetes-prediabetes":
                cond(pid, [{"system": SCT, "code": "714628002", "display": "Prediabetes"}], None, R.randint(100, 900))
            r = R.random()
            if p["age"] is not None and p["age"] < 2:
                r = 1.0
            if r < 0.3:
                cond(pid, [{"system": SCT, "code": "38341003", "display": "Hypertensive disorder"}], None, R.randint(100, max(101, min(5000, max_days))))
            elif r < 0.5:
                cond(pid, [{"system": SCT, "code": "195967001", "display": "Asthma"}], None, R.randint(100, max(101, min(5000, max_days))))
        for d_, v in p["hba1c"]:
            hba1c(pid, d_, v)
        # insulin
        ins = p["insulin"]
        if ins == "mdi":
            b = R.choice(BASAL)
            bo = R.choice(BOLUS)
            medreq(pid, b[0], b[1], "Inject 20 units at night", R.randint(20, 120))
            medreq(pid, bo[0], bo[1], "Inject 4 to 10 units three times a day with meals", R.randint(20, 120))
        elif ins == "premixed_bd" or ins == "bd":
            medreq(pid, MIXED[0], MIXED[1], "Inject 18 units twice a day before breakfast and evening meal", R.randint(20, 120))
        elif ins == "basal_od":
            b = R.choice(BASAL)
            medreq(pid, b[0], b[1], "Inject 24 units once daily", R.randint(20, 120))
        if p["dx"] == "t2" and ins is None and R.random() < 0.7:
            medreq(pid, "325278003", "Metformin 500mg tablets", "One tablet twice a day", R.randint(20, 120), system=SCT)
        # technology
        if p["pump"] == "hcl":
            k = int(pid[3:]) % 3
            if k == 0:
                did = rid("Device")
                res["Device"].append({"resourceType": "Device", "id": did, "status": "active",
                                      "deviceName": [{"name": "Omnipod 5 Automated Insulin Delivery System", "type": "user-friendly-name"}],
                                      "type": {"coding": [{"system": SCT, "code": "69805005", "display": "Insulin pump"}], "text": "Omnipod 5 hybrid closed loop insulin pump"},
                                      "patient": subj(pid)})
            elif k == 1:
                res["DeviceUseStatement"].append({"resourceType": "DeviceUseStatement", "id": rid("DeviceUseStatement"), "status": "active",
                                                  "subject": subj(pid), "device": {"display": "MiniMed 780G hybrid closed loop system"},
                                                  "recordedOn": day(R.randint(100, 700)), "timingPeriod": {"start": day(R.randint(100, 700))}})
            else:
                medreq(pid, None, "Omnipod 5 Pods (Insulet International Ltd) 5 device", "Change pod every 3 days", R.randint(15, 60))
        elif p["pump"] == "pump":
            k = int(pid[3:]) % 2
            if k == 0:
                res["Device"].append({"resourceType": "Device", "id": rid("Device"), "status": "active",
                                      "deviceName": [{"name": "mylife YpsoPump insulin pump", "type": "user-friendly-name"}],
                                      "type": {"coding": [{"system": SCT, "code": "69805005", "display": "Insulin pump"}]},
                                      "patient": subj(pid)})
            else:
                res["DeviceUseStatement"].append({"resourceType": "DeviceUseStatement", "id": rid("DeviceUseStatement"), "status": "active",
                                                  "subject": subj(pid), "device": {"display": "Insulin pump (CSII) - Accu-Chek Insight"},
                                                  "recordedOn": day(R.randint(200, 1500)), "timingPeriod": {"start": day(R.randint(200, 1500))}})
        if p["cgm"] == "rt":
            medreq(pid, "43230211000001101", "Dexcom G7 Sensor (Dexcom International Ltd) 1 kit", "Change sensor every 10 days", R.randint(15, 60), system=DMD)
        elif p["cgm"] == "is":
            medreq(pid, "39094711000001101", "FreeStyle Libre 2 Sensor (Abbott Laboratories Ltd) 1 kit", "Change sensor every 14 days", R.randint(15, 60), system=DMD)
        if p["iport"]:
            k = int(pid[3:]) % 2
            if k == 0:
                res["DeviceUseStatement"].append({"resourceType": "DeviceUseStatement", "id": rid("DeviceUseStatement"), "status": "active",
                                                  "subject": subj(pid), "device": {"display": "i-Port Advance injection port"},
                                                  "recordedOn": day(R.randint(60, 400)), "timingPeriod": {"start": day(R.randint(60, 400))}})
            else:
                medreq(pid, None, "i-Port Advance injection port 6mm", "Change port every 3 days", R.randint(15, 60))
        # findings
        if p["np"]:
            if p.get("np_form") == "np-icd-observation":
                obs(pid, [{"system": ICD10CM, "code": "F40.231", "display": "Fear of injections and transfusions"}], R.randint(60, 400), None, "Needle phobia")
            else:
                cond(pid, None, "Needle phobia", R.randint(60, 400))
        if p["lipo"]:
            obs(pid, [{"system": SCT, "code": "238894004", "display": "Insulin lipohypertrophy"}], R.randint(30, 200))
        if p["nonadh"]:
            obs(pid, [{"system": SCT, "code": "129834002", "display": "Non-compliance with medication regimen"}], R.randint(60, 400))
        if p["ia"]:
            obs(pid, [{"system": SCT, "code": "170766006", "display": "Loss of hypoglycaemic warning due to diabetes mellitus"}], R.randint(40, 200))
        if p["pregnant"]:
            obs(pid, [{"system": SCT, "code": "77386006", "display": "Pregnancy"}], R.randint(30, 90))
        for crit, val in p["conf"].items():
            obs(pid, [{"system": CRIT_CS, "code": crit}], R.randint(40, 200), {"valueBoolean": val}, None, "survey")

    # orphans: records naming Patients that are not in the export
    orphan_ids = [f"pt-missing-{k:03d}" for k in range(1, 13)]
    orphan_records = 0
    for k, oid in enumerate(orphan_ids):
        cond(oid, [{"system": SCT, "code": "46635009", "display": "Type 1 diabetes mellitus"}], None, R.randint(900, 5000))
        orphan_records += 1
        for _ in range(2):
            hba1c(oid, R.randint(30, 250), R.randint(60, 90))
            orphan_records += 1
        if k % 3 == 0:
            medreq(oid, BASAL[0][0], BASAL[0][1], "Inject 20 units at night", 40)
            orphan_records += 1
    # records naming no patient at all
    for _ in range(3):
        obs(None, [{"system": SCT, "code": "1049321000000109", "display": "Haemoglobin A1c level (monitoring ranges) - IFCC standardised"}],
            R.randint(30, 200), {"valueQuantity": {"value": 72, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}}, None, "laboratory")

    # write NDJSON (Patient lines shuffled so a stale record is not always next to its successor)
    R.shuffle(res["Patient"])
    manifest_out = []
    for rtype in ["Patient", "Condition", "Observation", "MedicationRequest", "Device", "DeviceUseStatement"]:
        path = os.path.join(OUT, f"{rtype}.ndjson")
        with open(path, "w", encoding="utf-8") as fh:
            for r in res[rtype]:
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
        manifest_out.append({"type": rtype, "url": f"file:///{rtype}.ndjson", "count": len(res[rtype])})
    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump({"transactionTime": TRANSACTION_TIME, "request": "https://gp-extract.example.nhs.uk/fhir/$export",
                   "requiresAccessToken": False, "output": manifest_out, "error": []}, fh, indent=2)

    # lookup tables
    with open(os.path.join(HERE, "place.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["practice_code", "place"])
        for code, (_, place, _) in PRACTICES.items():
            if place:
                w.writerow([code, place])
    with open(os.path.join(HERE, "pcn.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["practice_ods", "pcn_code", "pcn_name"])
        for code, (_, _, pcn) in PRACTICES.items():
            if pcn:
                w.writerow([code, pcn, PCNS[pcn]])
    with open(os.path.join(HERE, "postcode_lsoa.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["postcode", "lsoa_code"])
        for i, (pc, ls) in enumerate(POSTCODES.items()):
            written = pc[:-3] + " " + pc[-3:]
            if i % 4 == 3:
                written = pc  # the lookup itself is not consistently spaced
            w.writerow([written, ls])
    with open(os.path.join(HERE, "lsoa_imd.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["lsoa_code", "imd_quintile"])
        for ls, q in LSOA_IMD.items():
            w.writerow([ls, q])

    # ---------------------------------------------------------- labels and expected
    POL = ["iport-advance", "nice-ta151", "nice-ta943"]
    for p in people:
        p["band"] = {pol: band(pol, p) for pol in POL}
        p["band_strict"] = {pol: band(pol, p, strict=True) for pol in POL}

    with open(os.path.join(HERE, "people.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "nhs_number", "record", "profile", "practice", "place", "pcn", "age", "age_band",
                    "sex", "ethnicity", "postcode_as_written", "imd_quintile",
                    "band_iport_advance", "band_nice_ta151", "band_nice_ta943",
                    "strict_one_judgement_iport_advance", "strict_one_judgement_nice_ta151", "strict_one_judgement_nice_ta943",
                    "why"])
        for p in people:
            why = p["why"]
            extras = []
            if p["deceased"]:
                extras.append("deceased")
            if p["practice_kind"] == "no-ods":
                extras.append("practice named without ODS code -> place unknown")
            if p["practice"] in ("B86050", "B86051"):
                extras.append(f"practice {p['practice']} missing from place table" + ("" if p["practice"] == "B86050" else " and PCN table"))
            if p["postcode_status"] == "unmatched":
                extras.append("postcode not in lookup")
            if p["postcode_status"] == "none":
                extras.append("no postcode")
            if p.get("dup"):
                extras.append(f"duplicate by {'NHS number' if p['dup'] == 'nhs' else 'local identifier (no NHS number)'}: stale record {p['stale_pid']}")
            if p.get("mover"):
                extras.append(f"MOVER: stale record at {p['old_practice']} ({p['old_place']}) {p['old_postcode']}; the newer record wins")
            if p.get("np_form"):
                extras.append(p["np_form"])
            if p["lipo"]:
                extras.append("lipohypertrophy")
            if p["nonadh"]:
                extras.append("non-adherence")
            full_why = why + ("; " + "; ".join(extras) if extras else "")
            row = [p["pid"], p["nhs"] or "", "winner", p["profile"], p["practice_key"], p["place"], p["pcn"],
                   "" if p["age"] is None else p["age"], p["age_band"], p["sex"], p["eth_key"],
                   p["postcode_written"] or "", p["imd"]] + [p["band"][x] for x in POL] + [p["band_strict"][x] for x in POL] + [full_why]
            w.writerow(row)
            if p.get("dup"):
                w.writerow([p["stale_pid"], p["nhs"] or "", "stale duplicate of " + p["pid"], p["profile"],
                            p.get("old_practice", p["practice_key"]), p.get("old_place", p["place"]), "", "", "", "", "",
                            p.get("old_postcode", ""), "", "merged", "merged", "merged", "merged", "merged", "merged",
                            "stale duplicate (older meta.lastUpdated, no clinical records of its own); counted once under " + p["pid"]])

    BANDS = ["already using", "meets", "potentially eligible", "data missing", "does not meet"]
    KEY = {"already using": "already-using", "meets": "meets", "potentially eligible": "potentially-eligible",
           "data missing": "data-missing", "does not meet": "does-not-meet"}

    def tally(rows, pol, strict=False):
        t = {"cohort": 0}
        for b in BANDS:
            t[KEY[b]] = 0
        for p in rows:
            b = (p["band_strict"] if strict else p["band"])[pol]
            if b == "not in cohort":
                continue
            t["cohort"] += 1
            t[KEY[b]] += 1
        using, meets = t["already-using"], t["meets"]
        t["uptake"] = round(using / (using + meets), 4) if using + meets else None
        t["gap_per_1000"] = round(1000 * meets / t["cohort"], 1) if t["cohort"] else None
        return t

    STRAT = {"practice": "practice_key", "pcn": "pcn", "place": "place", "age-band": "age_band", "sex": "sex",
             "ethnicity": "eth_key", "imd-quintile": "imd"}
    expected = {"extract_date": EXTRACT.isoformat(), "transactionTime": TRANSACTION_TIME,
                "reading": "docs/sandbox.md: potentially eligible = not enough information, and confirming every "
                           "unknown confirmable criterion would meet it",
                "policy_aliases": {"iport-advance": ["iport-advance", "hny-iport-advance"],
                                   "nice-ta151": ["nice-ta151", "nice-insulin-pump"],
                                   "nice-ta943": ["nice-ta943", "nice-hybrid-closed-loop"]},
                "policies": {}}
    for pol in POL:
        e = tally(people, pol)
        e["strata"] = {}
        for s, attr in STRAT.items():
            groups = defaultdict(list)
            for p in people:
                if p["band"][pol] != "not in cohort":
                    groups[p[attr]].append(p)
            e["strata"][s] = {k: tally(v, pol) for k, v in sorted(groups.items())}
        e["alternative_one_judgement_reading"] = tally(people, pol, strict=True)
        expected["policies"][pol] = e

    stale = [p for p in people if p.get("dup")]
    living_reg = [p for p in people if not p["deceased"] and not p["unregistered"]]
    any_cohort = [p for p in people if any(p["in_cohort"].values())]
    expected["data_quality"] = {
        "patient_records_in_export": len(res["Patient"]),
        "people_after_deduplication": len(people),
        "duplicates_merged": len(stale),
        "duplicates_merged_by_nhs_number": sum(1 for p in stale if p["dup"] == "nhs"),
        "duplicates_merged_by_other_identifier": sum(1 for p in stale if p["dup"] == "local"),
        "movers_newer_record_wins": sum(1 for p in stale if p.get("mover")),
        "deceased_people": sum(1 for p in people if p["deceased"]),
        "deceased_people_with_diabetes": sum(1 for p in people if p["deceased"] and p["dx"]),
        "unregistered_people": sum(1 for p in people if p["unregistered"]),
        "unregistered_people_with_diabetes": sum(1 for p in people if p["unregistered"] and p["dx"]),
        "orphan_records": orphan_records,
        "orphan_patient_references": len(orphan_ids),
        "records_naming_no_patient": 3,
        "unmapped_practice_codes": ["B86050", "B86051"],
        "unmapped_practice_codes_count": 2,
        "people_at_unmapped_practices_all": sum(1 for p in people if p["practice"] in ("B86050", "B86051")),
        "people_at_unmapped_practices_alive_registered": sum(1 for p in living_reg if p["practice"] in ("B86050", "B86051")),
        "people_at_unmapped_practices_in_any_cohort": sum(1 for p in any_cohort if p["practice"] in ("B86050", "B86051")),
        "practice_codes_missing_from_pcn_table": ["B86051"],
        "people_with_practice_without_ods_code_all": sum(1 for p in people if p["practice_kind"] == "no-ods"),
        "people_with_practice_without_ods_code_alive": sum(1 for p in people if p["practice_kind"] == "no-ods" and not p["deceased"]),
        "people_with_practice_without_ods_code_in_any_cohort": sum(1 for p in any_cohort if p["practice_kind"] == "no-ods"),
        "unmatched_postcodes_people_all": sum(1 for p in people if p["postcode_status"] == "unmatched"),
        "unmatched_postcodes_people_alive_registered": sum(1 for p in living_reg if p["postcode_status"] == "unmatched"),
        "unmatched_postcodes_people_in_any_cohort": sum(1 for p in any_cohort if p["postcode_status"] == "unmatched"),
        "unmatched_postcodes_distinct": sorted({p["postcode_written"] for p in people if p["postcode_status"] == "unmatched"}),
        "people_without_postcode_all": sum(1 for p in people if p["postcode_status"] == "none"),
        "people_without_postcode_in_any_cohort": sum(1 for p in any_cohort if p["postcode_status"] == "none"),
        "diagnoses_in_uncovered_code_system_read_v2_only": sum(1 for p in people if p["dx_coding"] == "read_only"),
        "diagnoses_read_v2_with_recognisable_text": sum(1 for p in people if p["dx_coding"] == "read_text"),
        "people_without_birth_date": sum(1 for p in people if p["age"] is None),
        "unreadable_lines": 0,
    }
    expected["people_by_profile"] = dict(Counter(p["profile"] for p in people))
    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1)
    print(f"{len(people)} people, {len(res['Patient'])} Patient records; written to {HERE}")
    for pol in POL:
        e = expected["policies"][pol]
        print(pol, {k: e[k] for k in ["cohort", "already-using", "meets", "potentially-eligible", "data-missing", "does-not-meet", "uptake", "gap_per_1000"]})


if __name__ == "__main__":
    main()
