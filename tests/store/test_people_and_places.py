"""People (not calls) and places on the commissioners' dashboard, and its CSV download.

Real hook calls through the app, on SQLite and a real PostgreSQL: a person checked several
times counts once with their latest result; each evaluation counts at the place of the
patient's registered practice (through the deployment's practice → place table), or at
"unknown"; the download is what a spreadsheet opens.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.store.conftest import AppFactory, Clock, store_of
from tests.store.seed import accepted, overridden, post_feedback, post_hook

ADMIN = "admin-token-for-people-3c1d"
RANGE = "from=2026-11-01&to=2026-11-21"
EXCEL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


@pytest.fixture
def traffic(
    make_app: AppFactory, database_url: str, practices: Path, clock: Clock
) -> dict[str, Any]:
    """Four people, five checks: A twice (not enough information, then meets), B does not
    meet, C has no practice, D's practice is not in the table. Feedback: A's first card
    accepted (a confirmation suggestion), B's overridden (a card with nothing to accept)."""
    app = make_app(database_url, PLACE_BY_PRACTICE_FILE=str(practices), ANALYTICS_TOKEN=ADMIN)
    cards: dict[str, dict[str, Any]] = {}
    with app.test_client() as client:
        for name, kind, pid, practice in (
            ("a1", "insufficient", "pat-a", "B81001"),
            ("b", "does-not-meet", "pat-b", "B82002"),
            ("c", "insufficient", "pat-c", None),
            ("d", "insufficient", "pat-d", "Z99999"),
            ("a2", "meets", "pat-a", "B81001"),
        ):
            clock.advance(minutes=5)
            cards[name] = post_hook(client, kind, pid, f"h-{name}", practice)
        at = clock.now.isoformat()
        assert post_feedback(client, accepted(cards["a1"], at=at)).status_code == 200
        assert post_feedback(client, overridden(cards["b"], at=at)).status_code == 200
    assert store_of(app).flush(10)
    return {"app": app, "cards": cards}


def get(client: FlaskClient, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {ADMIN}"})


def test_people_are_counted_once_with_their_latest_result(traffic: dict[str, Any]) -> None:
    with traffic["app"].test_client() as client:
        data = get(client, f"/analytics.json?{RANGE}").json
    assert data["totals"]["evaluations"] == 5
    assert data["people"]["assessed"] == 4
    (iport,) = data["people"]["byPolicy"]
    assert iport["policy"] == "hny-iport-advance"
    assert iport["name"] == "NHS Humber and North Yorkshire: i-Port Advance commissioning policy"
    assert (iport["meets-criteria"], iport["does-not-meet-criteria"]) == (1, 1)
    assert (iport["insufficient-information"], iport["total"]) == (2, 4)
    by_pathway = {p["pathway"]: p for p in iport["pathways"]}
    assert by_pathway["type-1"]["name"] == "Type 1 diabetes"
    assert by_pathway["type-1"]["meets-criteria"] == 1  # A's latest, not A's first


def test_each_evaluation_counts_at_its_registered_practices_place(
    traffic: dict[str, Any],
) -> None:
    with traffic["app"].test_client() as client:
        data = get(client, f"/analytics.json?{RANGE}").json
        hull = get(client, f"/analytics.json?{RANGE}&place=hull").json
        unknown = get(client, f"/analytics.json?{RANGE}&place=unknown").json
        bad = get(client, f"/analytics.json?{RANGE}&place=atlantis")
    rows = {(r["place"], r["name"]): r for r in data["people"]["byPlace"]}
    assert set(rows) == {
        ("hull", "Hull"),
        ("north-yorkshire", "North Yorkshire"),
        ("unknown", "Unknown place"),
    }
    assert rows[("hull", "Hull")]["meets-criteria"] == 1
    assert rows[("north-yorkshire", "North Yorkshire")]["does-not-meet-criteria"] == 1
    assert rows[("unknown", "Unknown place")]["insufficient-information"] == 2  # C and D
    by_place = {r["place"]: r["total"] for r in data["evaluationsByPlace"]}
    assert by_place == {"hull": 2, "north-yorkshire": 1, "unknown": 2}
    assert (hull["people"]["assessed"], hull["totals"]["evaluations"]) == (1, 2)
    assert hull["totals"]["feedback"] == 1  # feedback follows its card's place
    assert unknown["people"]["assessed"] == 2
    assert bad.status_code == 400
    assert "'place' is not a place" in bad.json["issue"][0]["diagnostics"]


def test_feedback_split_by_what_the_card_offered_and_blockers_per_policy(
    traffic: dict[str, Any],
) -> None:
    with traffic["app"].test_client() as client:
        data = get(client, f"/analytics.json?{RANGE}").json
    offer = data["feedbackByOffer"]
    assert offer["withSuggestions"] == {"accepted": 1, "overridden": 0, "overrideRate": 0.0}
    assert offer["withoutSuggestions"] == {"accepted": 0, "overridden": 1, "overrideRate": 1.0}
    (iport,) = data["blockingByPolicy"]
    ids = {c["id"]: c for c in iport["criteria"]}
    assert "type-1-diabetes" not in ids  # a diagnosis gate is the pathway, not a barrier
    assert "type-2-diabetes" not in ids
    for c in ids.values():
        assert c["share"] == round(c["blocked"] / c["evaluations"], 4)
        assert c["blocked"] == c["notMet"] + c["unknown"] <= c["evaluations"]
    assert data["trend"]["bin"] == "day"
    assert sum(r["evaluations"] for r in data["trend"]["rows"]) == 5


def read_csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark: Excel reads UTF-8
    return list(csv.DictReader(io.StringIO(body[3:].decode("utf-8"))))


def test_download_csv_has_a_column_per_criterion_and_dates_excel_reads(
    traffic: dict[str, Any],
) -> None:
    with traffic["app"].test_client() as client:
        assert client.get(f"/analytics/export.csv?{RANGE}").status_code == 401
        resp = get(client, f"/analytics/export.csv?{RANGE}&place=hull")
        everything = get(client, f"/analytics/export.csv?{RANGE}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = read_csv(resp.data)
    assert len(rows) == 2  # the place filter applies
    assert len(read_csv(everything.data)) == 5
    first = rows[0]
    assert EXCEL_TIME.fullmatch(first["recorded (Europe/London)"])
    assert first["place"] == "Hull"
    assert first["practice (ODS)"] == "B81001"
    assert first["outcome"] == "Data missing"
    assert first["pathway"] == "Type 1 diabetes"
    assert first["criterion: Type 1 diabetes"] == "met"
    assert first["criterion: Needle phobia / significant injection anxiety"] == "unknown"
    assert rows[1]["outcome"] == "Meets"
    assert "pat-a" not in resp.data.decode("utf-8")


def test_download_feedback_joined_to_the_card_with_suggestions_named(
    traffic: dict[str, Any],
) -> None:
    suggestion = traffic["cards"]["a1"]["suggestions"][0]["label"]
    with traffic["app"].test_client() as client:
        rows = read_csv(get(client, f"/analytics/export.csv?{RANGE}&kind=feedback").data)
    by_outcome = {r["feedback"]: r for r in rows}
    yes = by_outcome["accepted"]
    assert yes["card outcome"] == "Data missing"
    assert yes["pathway"] == "Type 1 diabetes"
    assert yes["place"] == "Hull"
    assert yes["policy"].startswith("NHS Humber and North Yorkshire")
    assert yes["accepted suggestions (criteria)"]  # a criterion's title, not a uuid
    assert suggestion.endswith(yes["accepted suggestions (criteria)"])
    assert EXCEL_TIME.fullmatch(yes["feedback at (Europe/London)"])
    no = by_outcome["overridden"]
    assert (no["card outcome"], no["place"]) == ("Does not meet", "North Yorkshire")
    assert no["override reason"]


def test_a_bad_date_range_gets_a_page_that_says_what_to_change(traffic: dict[str, Any]) -> None:
    app: Flask = traffic["app"]
    with app.test_client() as client:
        resp = get(client, "/analytics?from=2026-11-21&to=2026-11-01")
    assert resp.status_code == 400
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "&#39;from&#39; must not be after &#39;to&#39;" in page
    assert "Show the last 30 days instead" in page
    assert "OperationOutcome" not in page


def test_a_malformed_practice_table_fails_start_up(
    make_app: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("practice_code,place\nB81001,atlantis\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv line 2: place 'atlantis'"):
        make_app(sqlite_url, PLACE_BY_PRACTICE_FILE=str(bad))


def test_the_operators_export_carries_practice_and_place(traffic: dict[str, Any]) -> None:
    result = traffic["app"].test_cli_runner().invoke(args=["export-audit", "--since", "2026-11-01"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["practice_code"], r["place"]) for r in rows] == [
        ("B81001", "hull"),
        ("B82002", "north-yorkshire"),
        ("", "unknown"),
        ("Z99999", "unknown"),
        ("B81001", "hull"),
    ]


def test_the_page_names_services_policies_and_places_for_people(traffic: dict[str, Any]) -> None:
    with traffic["app"].test_client() as client:
        page = get(client, "/analytics?policy=nice-insulin-pump").get_data(as_text=True)
        everything = get(client, "/analytics").get_data(as_text=True)
        england = get(client, "/analytics.json?place=england").status_code
    assert "<h1>NICE TA151: insulin pump therapy criteria: commissioner dashboard</h1>" in page
    assert '<option value="iport-advance-order-sign">' in page
    assert "NHS Humber and North Yorkshire: i-Port Advance commissioning policy: order sign" in page
    assert '<option value="vale-of-york">Vale of York</option>' in page
    assert '<option value="unknown">Unknown place</option>' in page
    # The places are the ICB's: national guidance ('england' in the NICE policies' files)
    # covers every one of them and is not a place to filter by.
    assert 'value="england"' not in everything
    assert ">England<" not in everything
    hny = "East Riding of Yorkshire, Hull, North East Lincolnshire, North Lincolnshire, "
    hny += "North Yorkshire, Vale of York"
    assert f"i-Port Advance commissioning policy: {hny}.</li>" in everything
    assert (
        f"NICE TA151: insulin pump therapy criteria: every place ({hny}): national guidance "
        "for all of England.</li>"
    ) in everything
    assert england == 400
    assert "i-Port Advance and insulin pump decision support: commissioner dashboard" in everything
