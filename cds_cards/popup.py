"""How much of a card a pop-up shows: the CDS Hooks Sandbox's card layout in numbers.

A patient-view card must fit 450 px and an order-select/order-sign card 650 px at the
Sandbox's 624 px card width, its action (a suggestion button, the assessment app's link) on
the first screen. The card's detail is cut to the room these numbers leave. They are the
Sandbox's (cds-hooks/sandbox ``card-list.css`` and ``card-list.jsx``, its Material UI theme
and MUI's defaults: 16 px text at line-height 1.5, 1 em paragraph margins, 36.5 px buttons),
with text widths for DejaVu Sans, the widest of the fonts its font stack falls back to; the
estimate is checked against Chromium's layout of every golden card by
``tests/browser/test_card_pixel_budget.py``, which fails a card over its budget.
"""

from __future__ import annotations

import re

CARD_HEIGHT_PX = {"patient-view": 450, "order": 650}
# Around the detail: the card's borders (2) and padding (2 × 20), the content's padding
# (16 + 24), the margins above and below the detail (16 + 16), the rule's margin (8) and
# border (2) and the dismiss buttons (37).
FRAME_PX = 2 + 40 + 40 + 16 + 16 + 8 + 2 + 37
SOURCE_LINE_PX = 20  # "Source: …" at 0.85 em italic, 5 px below
SOURCE_LINE_CHARS = 96
SUMMARY_LINE_PX = 27  # 18 px bold at line-height 1.5
SUMMARY_LINE_CHARS = 45  # with the spaces the Sandbox puts either side
# A suggestion button or a link's button, each on its own row: 14 px at line-height 1.75
# with 6 px padding above and below; a label wider than the card wraps inside its button.
BUTTON_LINE_PX = 25
BUTTON_PADDING_PX = 12
BUTTON_LINE_CHARS = 90
LINK_MARGIN_PX = 5  # below each link's (empty) "cannot launch" note
LINE_PX = 24
GAP_PX = 16  # between paragraphs and lists
LINE_CHARS = {"p": 60, "li": 58, "quote": 56}  # a paragraph, a list item, a quoted note
SAFETY_PX = 6  # what the estimate may be short by (a wide word, a wrap it did not foresee)

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_WIDE = re.compile("[\u2600-\u27bf\U0001f300-\U0001faff]")  # ✅ ❓ ⚠️: as wide as two letters


_ESCAPED = re.compile(r"\\(.)")
_EMPHASIS = re.compile(r"\*\*|(?<![\\\w])_|_(?!\w)")


def visible(markdown: str) -> str:
    """The text a line of card markdown shows: links as their text, no emphasis or escapes."""
    text = _LINK.sub(r"\1", markdown) if "](" in markdown else markdown
    if "*" in text:
        # bold letters are about a tenth wider: a letter more for every ten
        text = _BOLD.sub(lambda m: m.group(1) + "M" * (len(m.group(1)) // 10), text)
    if "*" in text or "_" in text:
        text = _EMPHASIS.sub("", text)
    if "\\" in text:
        text = _ESCAPED.sub(r"\1", text)
    return text if text.isascii() else _WIDE.sub("MM", text)


def wrapped_lines(text: str, width: int) -> int:
    """Lines ``text`` takes when wrapped at words to ``width`` characters."""
    if len(text) <= width:
        return 1
    lines, used = 1, -1  # -1: no space before a line's first word
    for size in map(len, text.split()):
        if used > 0 and used + 1 + size > width:
            lines, used = lines + 1, size
        else:
            used += size + 1
    return lines


def block_px(line: str) -> int:
    """Height of one line of card markdown (a paragraph, a list item or a quoted note)."""
    kind = "li" if line.startswith("- ") else "quote" if line.startswith("> ") else "p"
    text = visible(line[2:] if kind != "p" else line)
    return wrapped_lines(text, LINE_CHARS[kind]) * LINE_PX


def detail_px(lines: list[str], heights: dict[str, int] | None = None) -> int:
    """Height of a card's detail, one markdown line per paragraph, list item or quoted note:
    the blocks and the margins between them (list items of one list have none).
    ``heights``: each line's height already measured, kept across the drafts of one card
    (most lines recur from draft to draft)."""
    known = {} if heights is None else heights
    total = 0
    for i, line in enumerate(lines):
        if i and not (line.startswith("- ") and lines[i - 1].startswith("- ")):
            total += GAP_PX
        height = known.get(line)
        if height is None:
            height = known[line] = block_px(line)
        total += height
    return total


def detail_room_px(
    patient_view: bool, summary: str, source: str, suggestions: list[str], links: int
) -> int:
    """The height left for the detail once everything else on the card is laid out."""
    budget = CARD_HEIGHT_PX["patient-view" if patient_view else "order"]
    used = FRAME_PX + SAFETY_PX
    used += wrapped_lines(summary, SUMMARY_LINE_CHARS) * SUMMARY_LINE_PX
    used += wrapped_lines(f"Source: {source}", SOURCE_LINE_CHARS) * SOURCE_LINE_PX + 5
    used += sum(
        wrapped_lines(label, BUTTON_LINE_CHARS) * BUTTON_LINE_PX + BUTTON_PADDING_PX
        for label in suggestions
    )
    used += links * (BUTTON_LINE_PX + BUTTON_PADDING_PX + LINK_MARGIN_PX)
    return budget - used
