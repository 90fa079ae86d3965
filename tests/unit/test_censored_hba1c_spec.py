"""An HbA1c beyond the analyser's range ("> 130 mmol/mol", "<20") is certain in one direction.

A censored result — ``valueQuantity.comparator`` or a ``valueString`` such as
"> 130 mmol/mol" — is used in the direction in which it is certain and is *unknown* in the
other: ">130" is above 69 and above 58; ">60" is above 58 but may or may not be 69 or more;
"<20" is below both. It never makes a threshold met unless certain, and it is shown as written.
docs/policy-interpretation.md ("Results beyond the analyser's range") is this file in words.
Every example runs through ``policy.evaluate`` over the three policies; "today" is 2026-11-21.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from policy import Decision, Tri, load_policy
from tests.builders import (
    ASPART,
    GLARGINE_VTM,
    NON_ADHERENCE,
    T1DM,
    condition,
    hba1c,
    hba1c_censored,
    insulin,
    patient,
)

Decide = Callable[..., Decision]
IPORT = load_policy("iport-advance")
PUMP = load_policy("nice-insulin-pump")
HCL = load_policy("nice-hybrid-closed-loop")
BASAL_BOLUS = (
    insulin(GLARGINE_VTM, text="once daily at night"),
    insulin(ASPART, text="with meals"),
)
MET, NOT_MET, UNKNOWN = Tri.MET, Tri.NOT_MET, Tri.UNKNOWN


def results(*hba1cs: dict[str, Any], decide: Decide) -> tuple[Tri, Tri, Tri, Tri]:
    """(i-Port / TA151 "≥ 69 on MDI", i-Port "> 69 with poor adherence", pump "≥ 69 on MDI",
    TA943 "≥ 58") for a type 1 adult on basal-bolus insulin with poor adherence recorded."""
    rest = (patient(), condition(T1DM), condition(NON_ADHERENCE, onset="2026-10-01"))
    iport = decide(*rest, *hba1cs, *BASAL_BOLUS, policy=IPORT)
    pump = decide(*rest, *hba1cs, *BASAL_BOLUS, policy=PUMP)
    hcl = decide(*rest, *hba1cs, *BASAL_BOLUS, policy=HCL)
    return (
        iport.criteria["hba1c-69-or-above-on-mdi"].result,
        iport.criteria["hba1c-above-69-with-poor-adherence"].result,
        pump.criteria["hba1c-69-or-above-on-mdi"].result,
        hcl.criteria["hba1c-58-or-above"].result,
    )


# -- 1. The only (so the newest) result in the lookback: either side of 58 and 69 ---------------
# (written, ≥ 69 on MDI, > 69 with poor adherence, ≥ 58)
NEWEST = [
    (">130", MET, MET, MET),
    (">70", MET, MET, MET),
    (">69", MET, MET, MET),
    (">=69", MET, UNKNOWN, MET),  # exactly 69 is ≥ 69 but not > 69
    (">=70", MET, MET, MET),
    (">68", UNKNOWN, UNKNOWN, MET),  # 68.5 or 90: not certain either way for 69
    (">=68", UNKNOWN, UNKNOWN, MET),
    (">60", UNKNOWN, UNKNOWN, MET),
    (">58", UNKNOWN, UNKNOWN, MET),
    (">=58", UNKNOWN, UNKNOWN, MET),
    (">57", UNKNOWN, UNKNOWN, UNKNOWN),
    (">=57", UNKNOWN, UNKNOWN, UNKNOWN),
    ("<20", NOT_MET, NOT_MET, NOT_MET),
    ("<58", NOT_MET, NOT_MET, NOT_MET),
    ("<=57", NOT_MET, NOT_MET, NOT_MET),
    ("<=58", NOT_MET, NOT_MET, UNKNOWN),  # 58 is ≥ 58
    ("<59", NOT_MET, NOT_MET, UNKNOWN),
    ("<69", NOT_MET, NOT_MET, UNKNOWN),
    ("<=68", NOT_MET, NOT_MET, UNKNOWN),
    ("<=69", UNKNOWN, NOT_MET, UNKNOWN),  # 69 is ≥ 69, never > 69
    ("<70", UNKNOWN, UNKNOWN, UNKNOWN),
    ("<=70", UNKNOWN, UNKNOWN, UNKNOWN),
]


@pytest.mark.parametrize(("written", "mdi", "adherence", "hcl"), NEWEST)
def test_a_censored_result_decides_only_where_it_is_certain(
    decide: Decide, written: str, mdi: Tri, adherence: Tri, hcl: Tri
) -> None:
    # TA151's "≥ 69 on MDI" reads the same in the i-Port policy and the pump policy.
    assert results(hba1c_censored(written), decide=decide) == (mdi, adherence, mdi, hcl)


@pytest.mark.parametrize(("written", "mdi", "adherence", "hcl"), NEWEST)
def test_a_censored_value_string_reads_as_the_comparator_does(
    decide: Decide, written: str, mdi: Tri, adherence: Tri, hcl: Tri
) -> None:
    assert results(hba1c_censored(written, as_string=True), decide=decide) == (
        mdi,
        adherence,
        mdi,
        hcl,
    )


# -- 2. As the newest with an older exact result, and as an older result -------------------------
# (results newest first, ≥ 69 on MDI, > 69 with poor adherence, ≥ 58)
WITH_OTHERS = [
    # Newest censored, older exact: "remained high" reads every result; the latest decides the
    # others.
    ((">130", 75), MET, MET, MET),
    ((">130", 60), NOT_MET, MET, MET),  # the older 60 is not "remained high"
    ((">60", 75), UNKNOWN, UNKNOWN, MET),
    ((">60", 60), NOT_MET, UNKNOWN, MET),  # the older 60 settles "remained high"
    (("<20", 75), NOT_MET, NOT_MET, NOT_MET),
    (("<70", 75), UNKNOWN, UNKNOWN, UNKNOWN),
    (("<=69", 75), UNKNOWN, NOT_MET, UNKNOWN),
    # Older censored, newest exact: the latest is exact; "remained high" reads the bound.
    ((75, ">130"), MET, MET, MET),
    ((75, ">=69"), MET, MET, MET),
    ((75, ">60"), UNKNOWN, MET, MET),  # the older may have been below 69
    ((75, "<60"), NOT_MET, MET, MET),  # the older was certainly below 69
    ((75, "<=68"), NOT_MET, MET, MET),
    ((75, "<=69"), UNKNOWN, MET, MET),
    ((60, ">130"), NOT_MET, NOT_MET, MET),
]


@pytest.mark.parametrize(("values", "mdi", "adherence", "hcl"), WITH_OTHERS)
def test_a_censored_result_beside_an_exact_one(
    decide: Decide, values: tuple[Any, Any], mdi: Tri, adherence: Tri, hcl: Tri
) -> None:
    newest, older = (
        hba1c_censored(v, on=on) if isinstance(v, str) else hba1c(v, on=on)
        for v, on in zip(values, ("2026-11-02", "2026-06-01"), strict=True)
    )
    assert results(newest, older, decide=decide) == (mdi, adherence, mdi, hcl)


# -- 3. Shown as written; plausibility reads the number written ----------------------------------
def test_a_censored_result_is_shown_as_written(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c_censored(">130"), *BASAL_BOLUS, policy=HCL)
    r = d.criteria["hba1c-58-or-above"]
    assert r.result is MET
    assert r.reason == "Latest HbA1c >130 mmol/mol (2026-11-02) is ≥ 58."
    assert [e.summary for e in r.evidence] == ["HbA1c >130 mmol/mol on 2026-11-02"]


def test_a_censored_result_that_cannot_decide_says_why(decide: Decide) -> None:
    d = decide(patient(), condition(T1DM), hba1c_censored(">60"), *BASAL_BOLUS, policy=PUMP)
    r = d.criteria["hba1c-69-or-above-on-mdi"]
    assert r.result is UNKNOWN
    assert ">60 mmol/mol" in r.reason
    assert "may or may not be ≥ 69" in r.reason
    assert r.missing


@pytest.mark.parametrize(
    ("written", "plausible"),
    [
        (">130", True),
        (">200", True),  # the plausible range's maximum: an analyser's upper limit
        (">201", False),  # no analyser reports a bound above the plausible range
        ("<20", True),
        ("<19", False),
        ("<=20", True),
    ],
)
def test_a_censored_result_is_plausible_when_its_bound_is(
    decide: Decide, written: str, plausible: bool
) -> None:
    d = decide(patient(), condition(T1DM), hba1c_censored(written), *BASAL_BOLUS, policy=HCL)
    r = d.criteria["hba1c-58-or-above"]
    if plausible:
        assert r.result is not UNKNOWN
    else:
        assert r.result is UNKNOWN
        assert any(
            f"HbA1c {written} mmol/mol" in e.summary and "implausible, not used" in e.summary
            for e in r.context
        )


@pytest.mark.parametrize(
    "text", ["> 130 mmol/mol", ">130", "≥ 130 mmol/mol", ">130mmol/mol", "> 14 %"]
)
def test_censored_value_strings_as_labs_write_them(decide: Decide, text: str) -> None:
    r = hba1c(0, on="2026-11-02")
    del r["valueQuantity"]
    r["valueString"] = text
    d = decide(patient(), condition(T1DM), r, *BASAL_BOLUS, policy=HCL)
    assert d.criteria["hba1c-58-or-above"].result is MET


@pytest.mark.parametrize("text", ["high", "> 130 mmol/L", "see report", ">"])
def test_a_value_string_that_is_not_a_censored_hba1c_is_not_used(decide: Decide, text: str) -> None:
    r = hba1c(0, on="2026-11-02")
    del r["valueQuantity"]
    r["valueString"] = text
    d = decide(patient(), condition(T1DM), r, hba1c(75, on="2026-06-01"), policy=HCL)
    res = d.criteria["hba1c-58-or-above"]
    assert res.result is UNKNOWN  # the newest result cannot be read: the older must not decide
    assert "not used" in res.reason
