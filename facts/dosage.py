"""Insulin injections per day from a MedicationRequest's dosage instructions.

Structured timing is read first (``timing.repeat`` frequency/period/periodUnit, then
``repeat.when``, then ``timing.code``); UK prescriptions are often text only, so the
dosage text and patientInstruction are read last. Anything that does not state a frequency
("as directed", "sliding scale") gives ``None``: unknown, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Days per unit of Timing.repeat.periodUnit (UCUM).
_PERIOD_DAYS = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1,
    "wk": 7,
    "mo": 30.4375,
    "a": 365.25,
}

# HL7 v3 TimingEvent codes: each is one administration per day at that event; C/CM/CD/CV and the
# AC/PC variants are all meals: "C" alone means every meal (three a day).
_WHEN_PER_DAY = {
    "C": 3.0,
    "AC": 3.0,
    "PC": 3.0,
    "ACM": 1.0,
    "ACD": 1.0,
    "ACV": 1.0,
    "CM": 1.0,
    "CD": 1.0,
    "CV": 1.0,
    "PCM": 1.0,
    "PCD": 1.0,
    "PCV": 1.0,
    "HS": 1.0,
    "WAKE": 1.0,
    "MORN": 1.0,
    "MORN.early": 1.0,
    "MORN.late": 1.0,
    "NOON": 1.0,
    "AFT": 1.0,
    "AFT.early": 1.0,
    "AFT.late": 1.0,
    "EVE": 1.0,
    "EVE.early": 1.0,
    "EVE.late": 1.0,
    "NIGHT": 1.0,
    "PHS": 1.0,
}

# http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation
_TIMING_CODE_PER_DAY = {
    "QD": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "AM": 1.0,
    "PM": 1.0,
    "QOD": 0.5,
    "Q1H": 24.0,
    "Q2H": 12.0,
    "Q3H": 8.0,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "BED": 1.0,
    "WK": 1 / 7,
    "MO": 1 / 30.4375,
}

_NUMBER_WORDS = {"once": 1, "one": 1, "twice": 2, "two": 2, "three": 3, "thrice": 3, "four": 4}

# Explicit frequency statements, strongest first. Each pattern's value is injections per day.
_EXPLICIT: list[tuple[re.Pattern[str], float]] = [
    (
        re.compile(
            r"(?<!\w)(od|o\.d\.|qd|daily|once (a|per) day|once daily|every day|each day)(?!\w)"
        ),
        1.0,
    ),
    (re.compile(r"(?<!\w)(bd|b\.d\.|bid|b\.i\.d\.)(?!\w)"), 2.0),
    (re.compile(r"(?<!\w)(tds|t\.d\.s\.|tid|t\.i\.d\.)(?!\w)"), 3.0),
    (re.compile(r"(?<!\w)(qds|q\.d\.s\.|qid|q\.i\.d\.)(?!\w)"), 4.0),
]
_N_TIMES = re.compile(
    r"\b(?:(once|twice|thrice)|(one|two|three|four|\d+)\s*(?:x|times))\s*"
    r"(?:(?:a|per|each|every)\s*day|daily)\b"
)
_EVERY_N_HOURS = re.compile(r"\bevery\s+(\d+)\s*(?:h|hr|hrs|hours)\b|\bq(\d+)h\b")

# Time anchors, counted when no explicit frequency is stated ("morning and night" = 2).
_ANCHORS: list[tuple[re.Pattern[str], float]] = [
    (re.compile(r"\b(with|before|after)\s+(all\s+|each\s+|every\s+)?(main\s+)?meals\b"), 3),
    (re.compile(r"\bbreakfast\b"), 1),
    (re.compile(r"\blunch\b"), 1),
    (re.compile(r"\b(evening meal|dinner|tea ?time|supper)\b"), 1),
    (re.compile(r"\b(morning|mane|a\.m\.)\b"), 1),
    (re.compile(r"\b(bedtime|night|nocte|at bed)\b"), 1),
]
_EVENING_ALONE = re.compile(r"\bevening\b(?!\s+meal)")


def _num(word: str) -> float:
    return float(_NUMBER_WORDS.get(word, 0) or int(word))


def per_day_from_text(text: str) -> float | None:
    """Injections per day stated in free dosage text, or None when it does not say."""
    t = " ".join(text.lower().split())
    if not t:
        return None
    m = _N_TIMES.search(t)
    if m:
        word = m.group(1) or m.group(2)
        return _num(word)
    m = _EVERY_N_HOURS.search(t)
    if m:
        hours = int(m.group(1) or m.group(2))
        return 24 / hours if hours else None
    for pattern, value in _EXPLICIT:
        if pattern.search(t):
            return value
    total = sum(value for pattern, value in _ANCHORS if pattern.search(t))
    if _EVENING_ALONE.search(t):
        total += 1
    return float(total) if total else None


def _repeat_per_day(repeat: Mapping[str, Any]) -> tuple[float | None, str]:
    when = repeat.get("when")
    frequency = repeat.get("frequency")
    period = repeat.get("period")
    unit = repeat.get("periodUnit")
    if isinstance(period, int | float) and period > 0 and unit in _PERIOD_DAYS:
        freq = frequency if isinstance(frequency, int | float) and frequency > 0 else 1
        # "once a day at breakfast and dinner" is sent as frequency 1 + two when codes.
        if isinstance(when, list) and when and unit == "d" and period == 1:
            events = sum(_WHEN_PER_DAY.get(str(w), 1.0) for w in when)
            return max(float(freq), events), "timing.repeat"
        return float(freq) / (period * _PERIOD_DAYS[str(unit)]), "timing.repeat"
    if isinstance(when, list) and when:
        return sum(_WHEN_PER_DAY.get(str(w), 1.0) for w in when), "timing.repeat.when"
    return None, ""


def _timing_code_per_day(code: Any) -> tuple[float | None, str]:
    if not isinstance(code, dict):
        return None, ""
    for coding in code.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code") in _TIMING_CODE_PER_DAY:
            return _TIMING_CODE_PER_DAY[coding["code"]], f"timing.code {coding['code']}"
    text = code.get("text")
    if isinstance(text, str):
        per_day = per_day_from_text(text)
        if per_day is not None:
            return per_day, f"timing.code text '{text}'"
    return None, ""


def dosage_per_day(dosage: Mapping[str, Any]) -> tuple[float | None, str]:
    """Injections per day from one Dosage element, and which part of it said so."""
    timing = dosage.get("timing")
    if isinstance(timing, dict):
        repeat = timing.get("repeat")
        if isinstance(repeat, dict):
            per_day, source = _repeat_per_day(repeat)
            if per_day is not None:
                return per_day, source
        per_day, source = _timing_code_per_day(timing.get("code"))
        if per_day is not None:
            return per_day, source
    for key in ("text", "patientInstruction"):
        text = dosage.get(key)
        if isinstance(text, str):
            per_day = per_day_from_text(text)
            if per_day is not None:
                return per_day, f"dosage text '{text}'"
    return None, ""


def injections_per_day(dosages: Sequence[Any]) -> tuple[float | None, str]:
    """Injections per day over a prescription's dosage instructions.

    Instructions with the same ``sequence`` (or none) run together, so split doses add up
    ("8 units in the morning" + "6 units at night" = 2); different sequences run one after
    another ("10 units daily for 7 days, then 12 units daily"), so the busiest step counts.
    None when there is no dosage, or any instruction in a step does not state its frequency:
    a partial count would understate that step.
    """
    dosages = [d for d in dosages if isinstance(d, dict)]
    if not dosages:
        return None, "no dosage instruction"
    steps: dict[object, list[Mapping[str, Any]]] = {}
    for d in dosages:
        sequence = d.get("sequence")
        steps.setdefault(sequence if isinstance(sequence, int) else None, []).append(d)
    best: tuple[float, str] | None = None
    for step in steps.values():
        total = 0.0
        sources = []
        for d in step:
            per_day, source = dosage_per_day(d)
            if per_day is None:
                text = d.get("text")
                return None, f"dosage '{text}' states no frequency" if text else "no frequency"
            total += per_day
            sources.append(source)
        if best is None or total > best[0]:
            best = (total, "; ".join(sources))
    assert best is not None
    return best
