"""CDS Hooks 2.0 feedback: validated item by item, only for issued cards, stored once."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from store import FeedbackRecord
from tests.store.conftest import AppFactory, store_of
from tests.store.seed import ORDER_SELECT, accepted, overridden, post_feedback, post_hook

Item = dict[str, Any]


@pytest.fixture
def app(make_app: AppFactory, sqlite_url: str) -> Flask:
    return make_app(sqlite_url)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


@pytest.fixture
def card(client: FlaskClient) -> dict[str, Any]:
    return post_hook(client, "insufficient")


def diagnostics(resp: Any) -> str:
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.json
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def _drop(key: str) -> Callable[[Item], None]:
    return lambda item: item.pop(key)


def _set(key: str, value: Any) -> Callable[[Item], None]:
    return lambda item: item.__setitem__(key, value)


BAD_OVERRIDES: list[tuple[str, Callable[[Item], None], str]] = [
    ("no card", _drop("card"), "feedback[1].card must be a non-empty string"),
    ("card not a string", _set("card", 7), "feedback[1].card must be a non-empty string"),
    ("unknown outcome", _set("outcome", "ignored"), "feedback[1].outcome must be"),
    ("no timestamp", _drop("outcomeTimestamp"), "feedback[1].outcomeTimestamp must be"),
    ("no time zone", _set("outcomeTimestamp", "2026-11-21T10:31:00"), "RFC 3339"),
    ("date only", _set("outcomeTimestamp", "2026-11-21"), "RFC 3339"),
    ("impossible date", _set("outcomeTimestamp", "2026-02-30T10:00:00Z"), "not a valid"),
    ("future", _set("outcomeTimestamp", "2027-01-01T00:00:00Z"), "in the future"),
    (
        "reason not a Coding",
        _set("overrideReason", {"reason": "ifr"}),
        "feedback[1].overrideReason.reason must be a Coding",
    ),
    (
        "reason without code",
        _set("overrideReason", {"reason": {"system": "x"}}),
        "feedback[1].overrideReason.reason.code",
    ),
    (
        "reason the card did not offer",
        _set("overrideReason", {"reason": {"system": "urn:x", "code": "made-up"}}),
        "feedback[1].overrideReason.reason is not one of the card's overrideReasons",
    ),
    (
        "comment not a string",
        _set("overrideReason", {"userComment": ["x"]}),
        "feedback[1].overrideReason.userComment must be a string",
    ),
    (
        "comment too long",
        _set("overrideReason", {"userComment": "x" * 4001}),
        "userComment is too long",
    ),
    (
        "override with accepted suggestions",
        _set("acceptedSuggestions", [{"id": "a"}]),
        "feedback[1].acceptedSuggestions is only for an accepted outcome",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(c, m) for _, c, m in BAD_OVERRIDES],
    ids=[i for i, _, _ in BAD_OVERRIDES],
)
def test_a_bad_item_is_named_and_nothing_is_stored(
    app: Flask,
    client: FlaskClient,
    card: dict[str, Any],
    change: Callable[[Item], None],
    message: str,
) -> None:
    good = overridden(card, reason=0)
    bad = overridden(card, reason=1)
    change(bad)
    assert message in diagnostics(post_feedback(client, good, bad))
    assert store_of(app).counts()["feedback"] == 0


@pytest.mark.parametrize(
    ("accepted_suggestions", "message"),
    [
        (None, "feedback[0].acceptedSuggestions is required for an accepted outcome"),
        ([], "feedback[0].acceptedSuggestions is required"),
        (["id-1"], "feedback[0].acceptedSuggestions[0] must be an object"),
        ([{"id": ""}], "feedback[0].acceptedSuggestions[0].id must be a non-empty string"),
        (
            [{"id": "not-a-suggestion"}],
            "acceptedSuggestions[0].id is not a suggestion of that card",
        ),
    ],
)
def test_accepted_needs_the_cards_own_suggestions(
    client: FlaskClient, card: dict[str, Any], accepted_suggestions: Any, message: str
) -> None:
    item = accepted(card)
    if accepted_suggestions is None:
        del item["acceptedSuggestions"]
    else:
        item["acceptedSuggestions"] = accepted_suggestions
    assert message in diagnostics(post_feedback(client, item))


def test_override_reason_must_go_with_an_override(
    client: FlaskClient, card: dict[str, Any]
) -> None:
    item = accepted(card)
    item["overrideReason"] = {"userComment": "x"}
    assert "overrideReason is only for an overridden outcome" in diagnostics(
        post_feedback(client, item)
    )


def test_items_must_be_objects_and_not_too_many(client: FlaskClient, card: dict[str, Any]) -> None:
    assert "feedback[0] must be an object" in diagnostics(post_feedback(client, "x"))  # type: ignore[arg-type]
    too_many = [overridden(card)] * 101
    assert "at most 100" in diagnostics(post_feedback(client, *too_many))


def test_feedback_for_a_card_never_issued_is_rejected(client: FlaskClient) -> None:
    item = {
        "card": "8f1c5e0e-0000-4000-8000-000000000000",
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-21T10:31:00Z",
    }
    assert (
        "feedback[0].card '8f1c5e0e-0000-4000-8000-000000000000' is not a card this service issued"
        in diagnostics(post_feedback(client, item))
    )


def test_feedback_sent_to_another_service_is_rejected(
    client: FlaskClient, card: dict[str, Any]
) -> None:
    resp = post_feedback(client, overridden(card), service="iport-advance-order-sign")
    assert "is not a card this service issued" in diagnostics(resp)


def test_valid_feedback_is_stored_once_however_often_it_is_sent(
    app: Flask, client: FlaskClient, card: dict[str, Any]
) -> None:
    items = [
        overridden(card, reason=1, comment="IFR sent last week"),
        accepted(card, at="2026-11-21T10:32:00.123456789+01:00"),
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-21T10:33:00Z"},
    ]
    for _ in range(3):
        resp = post_feedback(client, *items, items[0])
        assert resp.status_code == 200, resp.get_data(as_text=True)
    s = store_of(app)
    assert s.counts()["feedback"] == 3
    rows = list(s.export("feedback", card_day()))
    assert [r["outcome"] for r in rows] == ["overridden", "accepted", "overridden"]
    first = rows[0]
    assert first["card_uuid"] == card["uuid"]
    assert first["reason_code"] == card["overrideReasons"][1]["code"]
    assert first["reason_display"] == card["overrideReasons"][1]["display"]
    assert first["user_comment"] == ""  # by default a comment's text is not kept
    assert first["user_comment_chars"] == len("IFR sent last week")
    assert rows[1]["accepted_suggestions"] == card["suggestions"][0]["uuid"]
    assert rows[1]["outcome_at"] == "2026-11-21T09:32:00.123+00:00"
    # Same card, same outcome and time but a different reason: a different item, stored.
    other = overridden(card, reason=2, comment="IFR sent last week")
    assert post_feedback(client, other).status_code == 200
    assert s.counts()["feedback"] == 4


def test_feedback_straight_after_the_card_before_it_is_written(
    app: Flask, client: FlaskClient, sqlite_url: str
) -> None:
    s = store_of(app)
    # Another process holds the write lock: the card's record stays queued.
    blocker = sqlite3.connect(
        str(make_url(sqlite_url).database), isolation_level=None, check_same_thread=False
    )
    try:
        blocker.execute("BEGIN IMMEDIATE")
        card = post_hook(client, "insufficient", hook_instance="pending")
        assert s.counts()["issued_card"] == 0  # still queued
        # The feedback's own write waits for the lock too: let it go half a second later.
        release = threading.Timer(0.5, blocker.execute, ("COMMIT",))
        release.start()
        assert post_feedback(client, overridden(card)).status_code == 200
        release.join()
    finally:
        blocker.close()
    assert s.flush(10)
    assert s.counts() | {"audit_criterion": 0} == {
        "audit_event": 1,
        "audit_criterion": 0,
        "issued_card": 1,
        "feedback": 1,
        "access_event": 1,
    }


def card_day() -> Any:
    from tests.store.conftest import NOW

    return NOW.date()


def test_feedback_route_is_the_cds_hooks_path(client: FlaskClient, card: dict[str, Any]) -> None:
    resp = client.post(
        f"/cds-services/{ORDER_SELECT}/feedback",
        json={"feedback": [overridden(card)]},
        headers={"Origin": "https://sandbox.cds-hooks.org"},
    )
    assert resp.status_code == 200


def test_add_feedback_counts_only_the_new_items(make_app: AppFactory, database_url: str) -> None:
    from tests.store.conftest import NOW

    def item(key: str) -> FeedbackRecord:
        return FeedbackRecord(
            dedup_key=key,
            service_id=ORDER_SELECT,
            card_uuid="card-1",
            outcome="accepted",
            outcome_at=NOW,
            received_at=NOW,
        )

    s = store_of(make_app(database_url))
    assert s.add_feedback([item("a"), item("b")]) == 2
    assert s.add_feedback([item("a"), item("b"), item("c")]) == 1
    assert s.add_feedback([item("c")]) == 0
    assert s.counts()["feedback"] == 3


# -- free-text comments: not kept unless FEEDBACK_STORE_COMMENTS; never logged ---------------
NHS_NUMBER_COMMENT = "Patient 943 476 5919 has an IFR pending; seen by Dr Smith"


def _comment_rows(app: Flask) -> list[dict[str, Any]]:
    return list(store_of(app).export("feedback", card_day()))


@pytest.mark.parametrize("keep", [False, True], ids=["default", "FEEDBACK_STORE_COMMENTS"])
def test_a_comment_is_kept_only_when_the_setting_says_and_is_never_logged(
    make_app: AppFactory, sqlite_url: str, keep: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url, FEEDBACK_STORE_COMMENTS=keep)
    with caplog.at_level(logging.DEBUG), app.test_client() as client:
        card = post_hook(client, "insufficient")
        long_comment = NHS_NUMBER_COMMENT + " " + "x" * 900
        items = [
            overridden(card, reason=1, comment=NHS_NUMBER_COMMENT),
            overridden(card, reason=2, comment=long_comment),
            overridden(card, reason=3),
        ]
        assert post_feedback(client, *items).status_code == 200
        bad = overridden(card, reason=1, comment=NHS_NUMBER_COMMENT)
        bad["outcomeTimestamp"] = "not a time"  # refused: its comment is not echoed either
        assert post_feedback(client, bad).status_code == 400
    rows = _comment_rows(app)
    lengths = [len(NHS_NUMBER_COMMENT), len(long_comment), ""]
    assert [r["user_comment_chars"] for r in rows] == lengths
    if keep:
        assert rows[0]["user_comment"] == NHS_NUMBER_COMMENT
        assert rows[1]["user_comment"] == long_comment[:500]  # capped
    else:
        assert [r["user_comment"] for r in rows] == ["", "", ""]
    logged = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert logged  # the hook call was logged
    assert not [line for line in logged if "943 476 5919" in line or "Dr Smith" in line]


def test_turning_comments_off_deletes_the_kept_texts_and_keeps_their_lengths(
    make_app: AppFactory, sqlite_url: str
) -> None:
    on = make_app(sqlite_url, FEEDBACK_STORE_COMMENTS=True)
    with on.test_client() as client:
        card = post_hook(client, "insufficient")
        sent = overridden(card, reason=1, comment=NHS_NUMBER_COMMENT)
        assert post_feedback(client, sent).status_code == 200
    assert _comment_rows(on)[0]["user_comment"] == NHS_NUMBER_COMMENT
    off = make_app(sqlite_url)  # the default: the next start deletes the texts
    rows = _comment_rows(off)
    assert rows[0]["user_comment"] == ""
    assert rows[0]["user_comment_chars"] == len(NHS_NUMBER_COMMENT)


def test_feedback_store_comments_must_be_a_boolean(make_app: AppFactory, sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="FEEDBACK_STORE_COMMENTS"):
        make_app(sqlite_url, FEEDBACK_STORE_COMMENTS="yes")
