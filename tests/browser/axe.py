"""axe-core (the accessibility rules engine, npm package ``axe-core``), installed by the test
run itself into test-artifacts/npm with Debian's npm, and run inside a Playwright page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.store import debian

AXE_VERSION = "4.10.3"
REPO = Path(__file__).resolve().parents[2]
PREFIX = REPO / "test-artifacts" / "npm"
SCRIPT = PREFIX / "node_modules" / "axe-core" / "axe.min.js"


def axe_script() -> str:
    if not SCRIPT.is_file():
        debian.ensure(["npm"], lambda: shutil.which("npm") is not None)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(PREFIX),
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            timeout=300,
            capture_output=True,
        )
    return SCRIPT.read_text(encoding="utf-8")


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations of impact 'serious' or 'critical' on the page as it is now (WCAG 2.x
    A and AA rules and best practices), each with the rule id, its help text and the nodes."""
    page.add_script_tag(content=axe_script())
    result: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}));
        }"""
    )
    return result
