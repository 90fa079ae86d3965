"""Feedback comments on the dashboard and in its CSV download, in a real browser, with and
without FEEDBACK_STORE_COMMENTS: by default only that a comment was given and its length."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser

import store
from service import create_app
from service.state import state_of
from tests.browser.test_dashboard import wait_for_render
from tests.service_process import serving
from tests.store.conftest import HASH_KEY, Clock
from tests.store.seed import overridden, post_feedback, post_hook

ADMIN = "dashboard-admin-token-comments-4f2a"
NOW = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
COMMENT = "NHS 943 476 5919: IFR already submitted"


@contextmanager
def dashboard(folder: Path, keep: bool) -> Iterator[str]:
    """A service with one card and two overrides (one with a comment), on a loopback port."""
    app = create_app(
        {
            "REQUIRE_AUTH": False,
            "DATABASE_URL": store.sqlite_url(folder / "audit.sqlite3"),
            "AUDIT_HASH_KEY": HASH_KEY,
            "ANALYTICS_TOKEN": ADMIN,
            "FEEDBACK_STORE_COMMENTS": keep,
            "SMALL_NUMBER_THRESHOLD": 0,  # exact counts: this page is about the comments
            "CLOCK": Clock(NOW),
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.test_client() as client:
        card = post_hook(client, "insufficient")
        sent = post_feedback(
            client, overridden(card, reason=1, comment=COMMENT), overridden(card, reason=2)
        )
        assert sent.status_code == 200
    assert state_of(app).store.flush(30)
    with serving(app) as url:
        yield url


@pytest.mark.parametrize("keep", [False, True], ids=["default", "FEEDBACK_STORE_COMMENTS"])
def test_the_dashboard_and_its_feedback_csv_work_with_and_without_comment_texts(
    browser: Browser, tmp_path: Path, keep: bool
) -> None:
    with dashboard(tmp_path, keep) as url:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{url}/analytics")
            page.fill("input[name=token]", ADMIN)  # signed in: the download carries the cookie
            page.click("button[type=submit]")
            page.wait_for_url("**/analytics")
            page.goto(f"{url}/analytics?from=2026-11-15&to=2026-11-21")
            wait_for_render(page, 1)
            assert page.text_content("#t-feedback") == "2"
            with page.expect_download() as download_info:
                page.click("#csv-feedback-link")
            raw = Path(download_info.value.path()).read_bytes()
            assert errors == []
        finally:
            context.close()
    rows = list(csv.DictReader(io.StringIO(raw[3:].decode("utf-8"))))
    by_length = sorted(rows, key=lambda r: r["comment length"])
    assert [r["comment length"] for r in by_length] == ["", str(len(COMMENT))]
    assert [r["comment"] for r in by_length] == ["", COMMENT if keep else ""]
    assert all(r["feedback"] == "overridden" for r in rows)
