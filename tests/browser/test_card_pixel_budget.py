"""Every golden card as the CDS Hooks Sandbox shows it, in Debian's Chromium at the Sandbox's
624 px card width: a patient-view card is at most 450 px tall and an order-select/order-sign
card at most 650 px, with its action (a suggestion button, or the assessment app's link) on the
first screen, so a pop-up shows the card and its action without scrolling.

The page is written here, not taken from the Sandbox: its card component renders, in order, the
summary, the source, the detail as GitHub-flavoured markdown with raw HTML, the suggestions as
contained buttons, each link as a text button in its own block, and a rule with the dismiss
button group (cds-hooks/sandbox ``src/components/CardList/card-list.jsx``). Its sizes are the
Sandbox's own, each written beside the rule that uses it in ``SANDBOX_CSS``.

Screenshot of every card at its measured height: test-artifacts/golden-cards.png.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from playwright.sync_api import Browser, Page

from policy import load_policy

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
ARTIFACTS = REPO / "test-artifacts"

CARD_WIDTH_PX = 624  # the Sandbox's card at its default layout, border box
BUDGET_PX = {"patient-view": 450, "order": 650}

# The Sandbox's card, from cds-hooks/sandbox: card-list.css (the card's class), card-list.jsx
# (what each part is), src/theme/index.js (the MUI theme: font stack, no uppercase buttons) and
# the Material UI v5 defaults those use (CssBaseline, Card, CardContent, Typography, Button,
# ButtonGroup). Browser defaults (paragraph, list and rule margins) are left to Chromium, as
# the Sandbox leaves them. On a machine without the stack's first fonts, Chromium falls back
# as it would for the Sandbox (Debian: DejaVu Sans, wider than Segoe UI: a conservative width).
SANDBOX_CSS = """
*, *::before, *::after { box-sizing: inherit; }               /* CssBaseline */
html { box-sizing: border-box; -webkit-font-smoothing: antialiased; }
body {                                                         /* CssBaseline: body1 */
  margin: 0; color: #333;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue",
    Arial, sans-serif;                                         /* theme typography */
  font-weight: 400; font-size: 1rem; line-height: 1.5; letter-spacing: 0.00938em;
}
strong, b { font-weight: 700; }                                /* CssBaseline */
.cards { width: calc(%(width)dpx + 16px); }  /* the card and its 16 px right margin */
.decision-card {                                               /* card-list.css */
  padding: 20px; margin: 16px 16px 16px 0; background: #fff;
  border: 1px solid #e0e0e0; border-left-width: 5px; border-radius: 12px;
  overflow: hidden;                                            /* MUI Paper (Card) */
}
.alert-info { border-left-color: #0079be; }
.alert-warning { border-left-color: #ffae42; }
.alert-critical { border-left-color: #c00; }
.card-content { padding: 16px; }                               /* MUI CardContent */
.card-content:last-child { padding-bottom: 24px; }
.summary { margin: 0; font-size: 18px; font-weight: 700; line-height: 1.5; }  /* Typography */
.card-source { font-size: .85em; font-style: italic; margin: 0 0 5px; }       /* card-list.css */
.source-link { color: blue; text-decoration: none; margin-right: 8px; }
.unlaunchable { font-size: .85em; font-style: italic; margin: 0 0 5px; }
.button {                                                      /* MUI Button */
  display: inline-flex; align-items: center; justify-content: center; position: relative;
  box-sizing: border-box; vertical-align: middle; margin: 0; border: 0; border-radius: 4px;
  font: inherit; font-weight: 500; font-size: 0.875rem; line-height: 1.75;
  letter-spacing: 0.02857em; text-transform: none; min-width: 64px; cursor: pointer;
}
.contained { padding: 6px 16px; background: #384e77; color: #fff; }
.text { padding: 6px 8px; background: none; color: #384e77; }
.group { display: inline-flex; border-radius: 4px; }          /* MUI ButtonGroup */
.outlined { padding: 5px 15px; border: 1px solid rgba(56, 78, 119, 0.5); background: none;
  color: #384e77; }
.outlined.small { padding: 3px 9px; font-size: 0.8125rem; }
.arrow { width: 1.5rem; height: 1.5rem; display: inline-block; }  /* ArrowDropDownIcon */
"""


@dataclass(frozen=True)
class GoldenCard:
    name: str
    hook: str  # "patient-view" or "order": which budget
    card: dict[str, Any]


def _hook_of_policy(policy_dir: str) -> str:
    """A policy's golden cards are order cards when it serves an order hook (its cards there
    are the order cards), else patient-view cards."""
    services = load_policy(policy_dir).services
    return "order" if any(s.hook.startswith("order-") for s in services) else "patient-view"


def golden_cards() -> list[GoldenCard]:
    """Every card in tests/golden: the concise cards per policy and demo patient, the one card
    the default deployment shows each demo patient on patient-view, and the cards of every
    golden hook response."""
    out = []
    for policy_dir in sorted(p for p in (GOLDEN / "cards").iterdir() if p.is_dir()):
        hook = _hook_of_policy(policy_dir.name)
        for f in sorted(policy_dir.glob("*.json")):
            out.append(GoldenCard(f"{policy_dir.name}/{f.stem}", hook, json.loads(f.read_text())))
    for f in sorted((GOLDEN / "patient-view").glob("*.json")):  # the deployment's one card
        for i, card in enumerate(json.loads(f.read_text())):
            out.append(GoldenCard(f"patient-view/{f.stem}#{i}", "patient-view", card))
    for f in sorted(GOLDEN.glob("*.response.json")):
        case = f.name.removesuffix(".response.json")
        request = json.loads((GOLDEN / f"{case}.request.json").read_text())
        hook = "patient-view" if request["hook"] == "patient-view" else "order"
        for i, card in enumerate(json.loads(f.read_text())["cards"]):
            out.append(GoldenCard(f"{case}#{i}", hook, card))
    return out


# remark-gfm with rehype-raw: CommonMark with raw HTML, tables and strikethrough
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def card_html(index: int, card: dict[str, Any]) -> str:
    """One card in the Sandbox's structure (card-list.jsx), ``data-action`` on its action."""
    e = html.escape
    parts = [f'<p class="summary"> {e(card["summary"])} </p>']
    source = card.get("source") or {}
    if source.get("label"):
        parts.append(
            f'<div class="card-source">Source: <a class="source-link" href="#"> '
            f"{e(source['label'])} </a> </div>"
        )
    parts.append(_MARKDOWN.render(card.get("detail", "")))
    suggestions = "".join(
        f'<button class="button contained" data-action="suggestion">{e(s["label"])}</button>'
        for s in card.get("suggestions", [])
    )
    parts.append(f'<div class="suggestions-section">{suggestions}</div>')
    links = "".join(
        f'<div><button class="button text" data-action="{e(link["type"])}">'
        f'{e(link["label"])}</button><div class="unlaunchable"></div></div>'
        for link in card.get("links", [])
    )
    parts.append(f'<div class="links-section">{links}</div>')
    parts.append(
        '<div class="dismiss-section"><div><hr><div class="group">'
        '<button class="button outlined">Dismiss</button>'
        '<button class="button outlined small"><svg class="arrow" viewBox="0 0 24 24">'
        '<path d="M7 10l5 5 5-5z"></path></svg></button></div></div></div>'
    )
    indicator = e(card.get("indicator", "info"))
    return (
        f'<div class="decision-card alert-{indicator}" data-card="{index}">'
        f'<div class="card-content">{"".join(parts)}</div></div>'
    )


def page_html(cards: list[dict[str, Any]]) -> str:
    """The cards one below another, each at the Sandbox's card width."""
    body = "".join(card_html(i, card) for i, card in enumerate(cards))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Cards</title>"
        f"<style>{SANDBOX_CSS % {'width': CARD_WIDTH_PX}}</style></head>"
        f"<body><div class='cards'>{body}</div></body></html>"
    )


@dataclass(frozen=True)
class Measured:
    height: float
    action_bottom: float | None  # below the card's top: the first suggestion, else the app link


@pytest.fixture(scope="module")
def measured(browser: Browser) -> Iterator[list[tuple[GoldenCard, Measured]]]:
    cards = golden_cards()
    context = browser.new_context(viewport={"width": CARD_WIDTH_PX + 40, "height": 900})
    page: Page = context.new_page()
    try:
        page.set_content(page_html([c.card for c in cards]))
        boxes = page.evaluate(
            """() => [...document.querySelectorAll('[data-card]')].map(card => {
                const top = card.getBoundingClientRect().top;
                const action = card.querySelector(
                    '[data-action="suggestion"]') || card.querySelector('[data-action="smart"]');
                return {
                    height: card.getBoundingClientRect().height,
                    width: card.getBoundingClientRect().width,
                    action: action ? action.getBoundingClientRect().bottom - top : null,
                };
            })"""
        )
        assert {b["width"] for b in boxes} == {CARD_WIDTH_PX}
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "golden-cards.png"), full_page=True)
        yield [(c, Measured(b["height"], b["action"])) for c, b in zip(cards, boxes, strict=True)]
    finally:
        context.close()


def test_every_golden_card_fits_its_pop_up_with_its_action_on_the_first_screen(
    measured: list[tuple[GoldenCard, Measured]],
) -> None:
    over = [
        f"{c.name}: {m.height:.0f} px > {BUDGET_PX[c.hook]} px ({c.hook})"
        for c, m in measured
        if m.height > BUDGET_PX[c.hook]
    ]
    buried = [
        f"{c.name}: action ends {m.action_bottom:.0f} px down"
        for c, m in measured
        if m.action_bottom is not None and m.action_bottom > BUDGET_PX[c.hook]
    ]
    assert not over, "\n".join(over)
    assert not buried, "\n".join(buried)


def test_every_card_that_can_be_acted_on_has_its_action_measured(
    measured: list[tuple[GoldenCard, Measured]],
) -> None:
    # A card with a suggestion or an assessment link has its action found on the page: the
    # budget test above is not passing for want of a button to measure.
    for c, m in measured:
        acts = c.card.get("suggestions") or any(
            k["type"] == "smart" for k in c.card.get("links", [])
        )
        assert (m.action_bottom is not None) is bool(acts), c.name
    assert len(measured) > 60


def test_the_budget_fails_a_card_over_it(browser: Browser) -> None:
    # The measure is live: a card whose detail is the same paragraph many times is over budget.
    card = json.loads((GOLDEN / "cards" / "nice-insulin-pump" / "no-diabetes.json").read_text())
    card["detail"] = "\n\n".join([card["detail"]] * 6)
    context = browser.new_context(viewport={"width": CARD_WIDTH_PX + 40, "height": 900})
    try:
        page = context.new_page()
        page.set_content(page_html([card]))
        height = page.evaluate("document.querySelector('[data-card]').offsetHeight")
        assert height > BUDGET_PX["patient-view"]
    finally:
        context.close()
