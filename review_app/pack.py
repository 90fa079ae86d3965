"""The commissioning evidence pack: the assessment as a paged A4 PDF for a funding panel.

The HTML is built from the same ``Assessment`` the app shows (``pack.html``), laid out for
paged media (patient name, NHS number and date of birth on every page, page numbers, the
deciding pathway first and the rest in an appendix) and printed by WeasyPrint. Nothing is
fetched while printing: the stylesheet is read from the package and any other URL the
document names is refused, so record text can never make the service fetch anything.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from weasyprint import CSS, HTML, URLFetcher

STYLESHEET = Path(__file__).resolve().parent / "static" / "pack.css"


@cache
def _stylesheet() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


def pdf_of(html: str) -> bytes:
    """The evidence pack's HTML printed to PDF (A4, paged by ``pack.css``).

    The fetcher allows inline ``data:`` URLs only: no network and no file is ever read,
    whatever the document names."""
    fetcher = URLFetcher(allowed_protocols={"data"}, allow_redirects=False)
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    pdf: bytes = document.write_pdf(stylesheets=[CSS(string=_stylesheet(), url_fetcher=fetcher)])
    return pdf
