"""``flask export-audit`` and ``flask purge-audit``: the audit trail as CSV, and retention now."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, TextIO

import click
from flask import (
    Flask,
)
from flask.cli import with_appcontext

import spreadsheet
from service.state import app_state
from store import repository


def init_app(app: Flask) -> None:
    app.cli.add_command(export_audit)
    app.cli.add_command(purge_audit)


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Iterable[str], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow({k: spreadsheet.cell(v) for k, v in row.items()})
        n += 1
    return n


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("must be a date, YYYY-MM-DD", param_hint=name) from exc


@click.command("export-audit")
@click.option("--since", required=True, help="First day (YYYY-MM-DD, Europe/London).")
@click.option("--until", default=None, help="Last day, inclusive (default: today).")
@click.option(
    "--feedback", is_flag=True, help="Export clinician feedback items instead of evaluations."
)
@click.option(
    "--access",
    is_flag=True,
    help="Export the access audit (every hook call, answered or refused: who, about which "
    "patient hash, what happened) for an information governance review.",
)
@click.option(
    "--refusals",
    is_flag=True,
    help="Export the calls refused before the caller was known (no valid token, or the "
    "client throttled), counted per client per minute.",
)
@click.option(
    "--output",
    "-o",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="CSV file to write (default: standard output).",
)
@with_appcontext
def export_audit(
    since: str, until: str | None, feedback: bool, access: bool, refusals: bool, output: str
) -> None:
    """Write the audit trail (or feedback, or the access audit) as CSV."""
    first = _parse_day(since, "--since")
    last = _parse_day(until, "--until")
    assert first is not None
    s = app_state().store
    s.flush(30)
    what = "access" if access else "refusals" if refusals else "feedback" if feedback else "audit"
    columns = {
        "access": repository.ACCESS_COLUMNS,
        "refusals": repository.REFUSAL_COLUMNS,
        "feedback": repository.FEEDBACK_COLUMNS,
        "audit": repository.AUDIT_COLUMNS,
    }[what]
    rows = s.export(what, first, last)
    if output == "-":
        n = write_csv(rows, columns, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8", newline="") as out:
            n = write_csv(rows, columns, out)
    click.echo(f"exported {n} row(s)", err=True)


@click.command("purge-audit")
@with_appcontext
def purge_audit() -> None:
    """Delete audit records and feedback older than AUDIT_RETENTION_DAYS now."""
    events, items = app_state().store.apply_retention()
    click.echo(f"deleted {events} evaluation(s) and {items} feedback item(s)")
