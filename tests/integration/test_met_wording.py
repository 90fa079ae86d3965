"""What met a pathway, in the app and the pack, in words that do not read as failure: a child
meets the under-12 route "through Under 12", never "Aged 12 or over: not met".

Real parts: sekmet holding a demo patient (under this module's own ids) and the clinician's
Practitioner record, the local Authlib authorization server, the service on a loopback port,
the PDF read back with pypdf.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

import demo
from tests.fhir_server import FhirTestServer
from tests.integration.ehr import launch_app, smart_for
from tests.integration.test_evidence_pack import CLINICIAN, pages_of
from tests.smart_server import SmartServer

pytestmark = pytest.mark.integration

DEMO = demo.get_patient("t1-child-mdi-impractical")  # 9, MDI impractical: meets all three
PID = "met-wording-child"


@pytest.fixture(scope="module")
def smart_server(fhir_server: FhirTestServer) -> Iterator[SmartServer]:
    with smart_for(fhir_server, DEMO, PID, CLINICIAN) as s:
        yield s


@pytest.mark.parametrize(
    ("policy", "said", "never"),
    [
        (
            "iport-advance",
            ["through the type 1 diabetes pathway", "Met through: Under 12; MDI impractical"],
            "Aged 12 or over: not met",
        ),
        (
            "nice-hybrid-closed-loop",
            ["Meets the child or young person (TA943 1.2) pathway: Under 18."],
            "Aged 18 or over: not met",
        ),
    ],
)
def test_a_met_pathway_says_what_met_it(
    review_url: str, smart_server: SmartServer, policy: str, said: list[str], never: str
) -> None:
    with requests.Session() as browser:
        launch_app(browser, review_url, smart_server.iss)
        page = browser.get(f"{review_url}/review/", params={"policy": policy}, timeout=20)
        assert 'data-outcome="meets-criteria"' in page.text
        pdf = browser.get(f"{review_url}/review/summary.pdf", params={"policy": policy})
        summary = browser.get(f"{review_url}/review/summary", params={"policy": policy})
    pack = " ".join(" ".join(pages_of(pdf.content)).split())
    for shown in (" ".join(page.text.split()), " ".join(summary.text.split()), pack):
        assert never not in shown
    assert said[-1] in " ".join(page.text.split()), re.findall(r"Meets the [^<]*", page.text)
    assert said[-1] in pack
    # an unknown alternative of the met pathway is not a gap
    assert "Not needed: the pathway is met without it." in pack
    assert "Not needed" in " ".join(page.text.split())
    # the other pathways' criteria (a pregnancy, for a child of 9) are apart, folded away
    deciding, _, others = page.text.partition('id="other-criteria"')
    assert others
    if policy == "nice-hybrid-closed-loop":
        assert 'id="criterion-pregnant"' in others
        assert 'id="criterion-pregnant"' not in deciding
