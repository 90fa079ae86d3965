"""Every FHIR answer is read under byte budgets, per answer and per hook, as sent and
decompressed, and reading stops at the first byte past one: a real gzip bomb (300 KB that
inflates to 300 MiB) served from loopback never gets into memory."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fhirdata import FetchSettings, FhirClient, new_session
from fhirdata.client import FhirTooLarge, MiB
from service import create_app
from tests.builders import iport_device_request
from tests.deploy.fhir_stub import FixedAnswerServer, gzip_bomb
from tests.hooks import hook_request

GZIP = {"Content-Type": "application/fhir+json", "Content-Encoding": "gzip"}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def read(base: str, executor: ThreadPoolExecutor, queries: dict[str, str], **budget: int) -> Any:
    fhir = FhirClient(
        base, session=new_session(4), executor=executor, settings=FetchSettings(**budget)
    )
    try:
        return fhir.fetch_all(queries)
    finally:
        fhir.close()


def test_a_gzip_bomb_is_stopped_at_the_decompressed_budget(executor: ThreadPoolExecutor) -> None:
    with FixedAnswerServer(gzip_bomb(300), GZIP) as bomb:
        tracemalloc.start()
        try:
            with pytest.raises(FhirTooLarge, match=r"FHIR_RESPONSE_MAX_BYTES \(4194304 bytes\)"):
                read(bomb.base_url, executor, {"conditions": "Condition?patient=p1"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 * MiB  # the budget and a chunk, not 300 MiB


@pytest.mark.parametrize("chunked", [False, True], ids=["Content-Length", "chunked"])
def test_an_answer_too_large_as_sent_is_refused(
    executor: ThreadPoolExecutor, chunked: bool
) -> None:
    body = json.dumps({"resourceType": "Bundle", "entry": [], "pad": "x" * (2 * MiB)}).encode()
    headers = {"Content-Type": "application/fhir+json"}
    with (
        FixedAnswerServer(body, headers, chunked=chunked) as big,
        pytest.raises(FhirTooLarge, match="FHIR_RESPONSE_MAX_COMPRESSED_BYTES"),
    ):
        read(big.base_url, executor, {"c": "Condition?patient=p1"},
             max_response_compressed_bytes=MiB)  # fmt: skip


def test_a_compressed_answer_within_its_budgets_is_read(executor: ThreadPoolExecutor) -> None:
    page = {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": {"resourceType": "Condition", "id": f"c{i}"}}
                      for i in range(2000)]}  # fmt: skip
    with FixedAnswerServer(gzip.compress(json.dumps(page).encode()), GZIP) as fhir:
        result = read(fhir.base_url, executor, {"c": "Condition?patient=p1"})
    assert len(result.resources["c"]) == 2000


def test_a_hooks_answers_together_have_a_budget(executor: ThreadPoolExecutor) -> None:
    """Each answer is within the per-answer budget; together they are not."""
    body = json.dumps({"resourceType": "Bundle", "pad": "x" * (MiB // 2)}).encode()
    queries = {f"q{i}": f"Condition?patient=p{i}" for i in range(4)}
    with FixedAnswerServer(body, {"Content-Type": "application/fhir+json"}) as fhir:
        with pytest.raises(FhirTooLarge, match=r"one hook exceeded FHIR_HOOK_MAX_BYTES"):
            read(fhir.base_url, executor, queries, max_hook_bytes=MiB)
        read(fhir.base_url, executor, queries, max_hook_bytes=4 * MiB)  # within it: read


def test_a_hook_whose_fhir_answer_is_a_bomb_is_answered_412_naming_the_limit() -> None:
    app = create_app({"REQUIRE_AUTH": False, "FHIR_ALLOW_LOOPBACK": True})
    with FixedAnswerServer(gzip_bomb(300), GZIP) as bomb:
        body = hook_request(
            "order-sign", drafts=[iport_device_request()], fhir_server=bomb.base_url
        )
        resp = app.test_client().post("/cds-services/iport-advance-order-sign", json=body)
    assert resp.status_code == 412
    # Eight searches read at once: the hook's budget or one answer's, whichever is first.
    assert re.search(r"FHIR_(RESPONSE|HOOK)_MAX_BYTES \(\d+ bytes\)",
                     resp.json["issue"][0]["diagnostics"])  # fmt: skip
