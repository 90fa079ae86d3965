"""Plain-text views for a terminal: a decision as a table, CDS Hooks cards as a person sees them.

Text only (no colour, no box drawing) so it reads the same in a terminal, a log or an email.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from policy import CriterionResult, Decision, Outcome, Tri

OUTCOME_LABEL = {
    Outcome.MEETS: "MEETS CRITERIA",
    Outcome.DOES_NOT_MEET: "DOES NOT MEET CRITERIA",
    Outcome.INSUFFICIENT: "INSUFFICIENT INFORMATION",
}
RESULT_LABEL = {Tri.MET: "met", Tri.NOT_MET: "NOT MET", Tri.UNKNOWN: "unknown"}


def width() -> int:
    return max(80, min(140, shutil.get_terminal_size((100, 24)).columns))


def _wrap(text: str, indent: int, total: int, first: str = "") -> list[str]:
    """``first`` (padded to ``indent``) then ``text`` wrapped to ``total`` columns."""
    pad = " " * indent
    lines = textwrap.wrap(text, total - indent, break_long_words=True) or [""]
    head = (first.ljust(indent) if first else pad) + lines[0]
    return [head] + [pad + line for line in lines[1:]]


def _criterion_rows(r: CriterionResult, total: int, name_w: int, result_w: int) -> list[str]:
    indent = name_w + result_w + 4
    name_lines = textwrap.wrap(r.title, name_w) or [r.id]
    body: list[str] = _wrap(r.reason, indent, total)
    for e in r.evidence[:6]:
        body += _wrap(f"- {e.ref}: {e.summary}", indent + 2, total)
    if len(r.evidence) > 6:
        body += _wrap(f"- ... and {len(r.evidence) - 6} more", indent + 2, total)
    for e in r.context[:3]:
        body += _wrap(f"- context: {e.summary}", indent + 2, total)
    rows = []
    for i in range(max(len(name_lines), len(body))):
        name = name_lines[i] if i < len(name_lines) else ""
        result = RESULT_LABEL[r.result] if i == 0 else ""
        rest = body[i][indent:] if i < len(body) else ""
        rows.append(f"  {name:<{name_w}}{result:<{result_w}}{rest}".rstrip())
    return rows


def decision_table(decision: Decision, patient: str | None) -> str:
    """The whole decision: outcome, reason, every criterion with its result and evidence."""
    total = width()
    policy = decision.policy
    chosen = next((p for p in decision.pathways if p.id == decision.pathway), None)
    out = _wrap(policy.title, 11, total, "Policy")
    out += _wrap(
        f"{policy.publisher}; version {policy.version}, review due {policy.review_due}",
        11,
        total,
    )
    out.append(f"{'Patient':<11}{patient or '(not named in the file)'}")
    out.append(f"{'Evaluated':<11}{decision.evaluated_on} (Europe/London)")
    out.append("")
    headline = OUTCOME_LABEL[decision.outcome] + (f" ({chosen.title} pathway)" if chosen else "")
    out.append(f"{'Outcome':<11}{headline}")
    out += _wrap(decision.reason, 11, total)
    out += _wrap(
        "; ".join(f"{p.title}: {RESULT_LABEL[p.result]}" for p in decision.pathways),
        11,
        total,
        "Pathways",
    )
    name_w, result_w = 36, 10
    header = f"  {'Criterion':<{name_w}}{'Result':<{result_w}}Reason and evidence"
    rule = f"  {'-' * (name_w - 2):<{name_w}}{'-' * (result_w - 2):<{result_w}}" + "-" * (
        total - name_w - result_w - 4
    )
    shown = list(decision.shown_criteria)
    others = [c for c in decision.criteria if c not in shown]
    out += ["", header, rule]
    for cid in shown:
        out += _criterion_rows(decision.criteria[cid], total, name_w, result_w)
    if others:
        out += ["", "  Not on the deciding pathway:"]
        for cid in others:
            out += _criterion_rows(decision.criteria[cid], total, name_w, result_w)
    missing = [
        (decision.criteria[c].title, decision.criteria[c].missing)
        for c in shown
        if decision.criteria[c].result is Tri.UNKNOWN and decision.criteria[c].missing
    ]
    if missing:
        out += ["", "What would settle the unknowns:"]
        for title, what in missing:
            out += _wrap(f"- {title}: {what}", 4, total)
    if decision.not_used:
        out += ["", "Read and not used:"]
        for e in decision.not_used:
            out += _wrap(f"- {e.summary}", 4, total)
    if decision.warnings:
        out += ["", "Warnings from reading the record:"]
        for w in decision.warnings:
            out += _wrap(f"- {w}", 4, total)
    out += ["", "Assumed in reading the policy:"]
    for a in decision.assumptions:
        out += _wrap(f"- {a}", 4, total)
    if decision.policy_overdue:
        out += ["", f"WARNING: this policy was due for review on {policy.review_due}."]
    out += ["", "Advisory only: the decision to prescribe rests with the clinician."]
    return "\n".join(out) + "\n"


# -- cards ----------------------------------------------------------------------------------------
_LINK = re.compile(r"(?<!\\)\[((?:[^\]\\]|\\.)*)\]\(([^)\s]*)\)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: a backslash before punctuation


def _inline(text: str) -> str:
    """Markdown inline markup to plain text."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    text = re.sub(r"(?<!\\)(\*\*|`)", "", text)
    text = re.sub(r"(?<![A-Za-z0-9\\])_([^_]+?)(?<!\\)_(?![A-Za-z0-9])", r"\1", text)
    # Record text reaches card markdown backslash-escaped: shown as the record has it.
    return _ESCAPED.sub(r"\1", text)


def _is_rule(cells: list[str]) -> bool:
    return all(re.fullmatch(r":?-{3,}:?", c) for c in cells if c)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL_SPLIT.split(line.strip().strip("|"))]


def markdown_text(md: str, total: int, indent: int = 2) -> list[str]:
    """A card's markdown detail as wrapped plain text; table rows become indented blocks."""
    out: list[str] = []
    pad = " " * indent
    lines = [raw.rstrip() for raw in md.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("|"):
            cells = _cells(line)
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if _is_rule(cells) or (following.startswith("|") and _is_rule(_cells(following))):
                continue  # the header row and its rule: each row below says what it is
            if len(cells) >= 3:
                name, result, rest = _inline(cells[0]), _inline(cells[1]), cells[2]
                out += _wrap(f"{result}  {name}", indent, total)
                for part in rest.split("<br>"):
                    out += _wrap(_inline(part), indent + 4, total)
            else:
                out += _wrap(_inline(" | ".join(cells)), indent, total)
            continue
        if not line.strip():
            if out and out[-1] != "":
                out.append("")
            continue
        quote = re.match(r"^\s*>\s?(.*)$", line)
        bullet = re.match(r"^\s*[-*]\s+(.*)$", line)
        found = quote or bullet
        if found is not None:
            mark = "> " if quote else "- "
            text = found.group(1)
            wrapped = textwrap.wrap(_inline(text), total - indent - 2) or [""]
            out.append(pad + mark + wrapped[0])
            out += [pad + (mark if quote else "  ") + w for w in wrapped[1:]]
            continue
        out += _wrap(_inline(line), indent, total)
    return out


def _items(values: Iterable[Any]) -> list[Mapping[str, Any]]:
    return [v for v in values if isinstance(v, Mapping)]


def cards_text(cards: list[Any]) -> str:
    """Every card, in order, as an EHR would show it: headline, detail, choices, links."""
    total = width()
    if not cards:
        return "No cards: the service had nothing to show for this patient.\n"
    out: list[str] = []
    for n, card in enumerate(_items(cards), 1):
        title = f" Card {n} of {len(cards)} "
        out.append(f"=={title}{'=' * max(0, total - len(title) - 2)}")
        indicator = str(card.get("indicator", "info")).upper()
        out += _wrap(f"[{indicator}] {card.get('summary', '')}", 0, total)
        source = card.get("source")
        if isinstance(source, Mapping) and source.get("label"):
            out += _wrap(f"Source: {source['label']}", 0, total)
        detail = card.get("detail")
        if isinstance(detail, str) and detail:
            out.append("")
            out += markdown_text(detail, total)
        suggestions = _items(card.get("suggestions") or [])
        if suggestions:
            how = card.get("selectionBehavior", "any")
            out += ["", f"Suggestions (choose {how}):"]
            for i, s in enumerate(suggestions, 1):
                star = " (recommended)" if s.get("isRecommended") else ""
                out += _wrap(f"{i}. {s.get('label', '')}{star}", 2, total)
        links = _items(card.get("links") or [])
        if links:
            out += ["", "Links:"]
            for link in links:
                kind = " [SMART app]" if link.get("type") == "smart" else ""
                out += _wrap(f"- {link.get('label', '')}: {link.get('url', '')}{kind}", 2, total)
        reasons = _items(card.get("overrideReasons") or [])
        if reasons:
            out += ["", "If you do not follow this card, say why:"]
            for r in reasons:
                out += _wrap(f"- {r.get('display') or r.get('code')}", 2, total)
        out.append("")
    return "\n".join(out) + "\n"
