"""The uptake-gap report: one self-contained HTML file (Chart.js, the dashboard's vendored copy,
inlined; every chart beside a table of its numbers) from a population run's tally."""

from __future__ import annotations

from datetime import date
from importlib import resources
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

import places
from cli.population import PopulationSummary
from cli.uptake import BANDS, DIMENSIONS, UptakeTally

DIMENSION_TITLES = {
    "place": "place",
    "age_band": "age band",
    "sex": "sex",
    "deprivation_quintile": "deprivation quintile (1 = most deprived)",
}


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("cli", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _chart_js() -> str:
    return (resources.files("service") / "static/vendor/chart.umd.min.js").read_text("utf-8")


def report_data(tally: UptakeTally) -> list[dict[str, Any]]:
    """Per policy: bands and the gap by each dimension, as the page draws them."""
    policies = list(tally.policies)
    out = []
    for pid in policies:
        people = tally.people(pid)
        dims = []
        for dim in DIMENSIONS:
            if dim == "deprivation_quintile" and not tally.deprivation:
                continue
            rows = tally.breakdown(pid, dim)
            if dim == "place":
                for r in rows:
                    r["group"] = places.place_name(r["group"])
            dims.append({"id": dim, "title": DIMENSION_TITLES[dim], "rows": rows})
        out.append(
            {
                "id": pid,
                "name": tally.names.get(pid, pid),
                "version": tally.policies[pid],
                "technology": tally.technology.get(pid, "the technology"),
                "coverage": tally.coverage.get(pid, ""),
                "people": people,
                "bands": [
                    {
                        "band": b,
                        "people": tally.bands[(pid, b)],
                        "share": round(tally.bands[(pid, b)] / people, 4) if people else None,
                    }
                    for b in BANDS
                ],
                "dimensions": dims,
            }
        )
    return out


def render_report(summary: PopulationSummary, *, today: date, source: str) -> str:
    tally = summary.tally
    data = report_data(tally)
    return (
        _env()
        .get_template("uptake_report.html")
        .render(
            today=today.isoformat(),
            source=source,
            summary=summary,
            tally=tally,
            policies=data,
            data_json=orjson.dumps(data).decode("utf-8").replace("</", "<\\/"),
            chart_js=_chart_js(),
        )
    )
