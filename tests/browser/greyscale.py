"""Every series of a chart stays distinguishable without colour: the chart's canvas is taken
as a screenshot, converted to greyscale with Pillow, and the inside of each series' largest bar
is measured (mean grey level and its spread, the spread being the pattern). Two series are apart
when either differs clearly."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from statistics import fmean, pstdev

from PIL import Image
from playwright.sync_api import Page

# Grey levels 0-255: a mean or a spread this far apart is seen at a glance.
APART = 12.0
INSET = 2  # pixels inside each bar's edge, clear of its border

_BARS = """(id) => {
    const chart = Chart.getChart(document.getElementById(id));
    const out = [];
    chart.data.datasets.forEach((d, i) => {
        const meta = chart.getDatasetMeta(i);
        if (meta.hidden) return;
        meta.data.forEach((bar, j) => {
            const p = bar.getProps(["x", "y", "base", "width", "height", "horizontal"], true);
            const [lo, hi] = p.horizontal ? [p.x, p.base] : [p.y, p.base];
            const half = (p.horizontal ? p.height : p.width) / 2;
            const rect = p.horizontal
                ? [Math.min(lo, hi), p.y - half, Math.max(lo, hi), p.y + half]
                : [p.x - half, Math.min(lo, hi), p.x + half, Math.max(lo, hi)];
            const series = d.series || (d.seriesPerBar || [])[j];
            out.push({series, rect});
        });
    });
    return out;
}"""


@dataclass(frozen=True)
class Grey:
    series: str
    mean: float
    spread: float


def series_greys(page: Page, canvas_id: str) -> list[Grey]:
    """Each series' largest bar on the canvas ``canvas_id``, in greyscale."""
    bars = page.evaluate(_BARS, canvas_id)
    shot = Image.open(io.BytesIO(page.locator(f"#{canvas_id}").screenshot())).convert("L")
    scale = shot.width / page.evaluate(
        "(id) => document.getElementById(id).getBoundingClientRect().width", canvas_id
    )
    largest: dict[str, tuple[float, list[float]]] = {}
    for bar in bars:
        left, top, right, bottom = (v * scale for v in bar["rect"])
        box = (int(left) + INSET, int(top) + INSET, int(right) - INSET, int(bottom) - INSET)
        if bar["series"] is None or box[2] - box[0] < 10 or box[3] - box[1] < 10:
            continue  # too small to hold its pattern (or a zero)
        area = (box[2] - box[0]) * (box[3] - box[1])
        if area > largest.get(bar["series"], (0.0, []))[0]:
            largest[bar["series"]] = (area, [float(v) for v in shot.crop(box).tobytes()])
    return [Grey(s, fmean(px), pstdev(px)) for s, (_, px) in largest.items()]


def indistinct(greys: list[Grey]) -> list[tuple[str, str]]:
    """The pairs of series that neither grey level nor pattern tells apart."""
    return [
        (a.series, b.series)
        for a, b in itertools.combinations(greys, 2)
        if abs(a.mean - b.mean) < APART and abs(a.spread - b.spread) < APART
    ]
