"""How cards read on a terminal: the golden responses, rendered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.render import cards_text, decision_table, markdown_text
from policy import Decision
from tests.builders import T1DM, condition, hba1c, patient

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.response.json")))
def test_golden_cards_render_as_plain_text(name: str) -> None:
    cards = json.loads((GOLDEN / name).read_text())["cards"]
    text = cards_text(cards)
    if not cards:
        assert text.startswith("No cards")
        return
    card = cards[0]
    assert f"[{card['indicator'].upper()}] {card['summary']}" in text
    assert "|" not in text
    assert "**" not in text
    assert "<br>" not in text
    for suggestion in card.get("suggestions", []):
        assert suggestion["label"] in text
    for link in card.get("links", []):
        assert link["url"] in text
    assert all(len(line) <= 140 for line in text.splitlines())


def test_markdown_pieces() -> None:
    md = "\n".join(
        [
            "**Bold reason**",
            "",
            "| Criterion | Result | Evidence |",
            "| --- | --- | --- |",
            "| Needle \\| phobia | ✅ met | Recorded<br>`Condition/1` x \\> y |",
            "| short | row |",
            "",
            "> a quoted note that is long enough to wrap " + "word " * 30,
            "- a bullet _in italics_ with [a link](https://example.org)",
            "",
            "",
            "_Advisory only._",
        ]
    )
    lines = markdown_text(md, 80)
    text = "\n".join(lines)
    assert lines[0] == "  Bold reason"
    assert "  ✅ met  Needle | phobia" in lines
    assert "      Recorded" in lines
    assert "      Condition/1 x > y" in lines
    assert "  short | row" in lines
    assert "Criterion" not in text  # the header row is dropped
    assert sum(1 for line in lines if line.startswith("  > ")) >= 2
    assert "  - a bullet in italics with a link (https://example.org)" in lines
    assert lines[-1] == "  Advisory only."
    assert "\n\n\n" not in text


def test_the_decision_table_names_an_hba1c_dated_after_today(
    decide: Callable[..., Decision],
) -> None:
    d = decide(patient(), condition(T1DM), hba1c(75), hba1c(80, on="2027-03-03"))
    text = decision_table(d, None)
    assert "Read and not used:" in text
    assert "HbA1c 80 mmol/mol (2027-03-03): dated after today, not used" in text


def test_card_markdown_escapes_read_as_the_record_has_them() -> None:
    md = "- Needle phobia \\<img\\> \\[x\\](y) a\\_b\\_c \\*\\*b\\*\\* > 69"
    (line,) = markdown_text(md, 100)
    assert line == "  - Needle phobia <img> [x](y) a_b_c **b** > 69"
