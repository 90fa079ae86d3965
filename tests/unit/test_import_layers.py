"""The three faces keep their imports apart and free of cycles.

The contracts are import-linter's, in ``pyproject.toml`` (population/ imports no web app and
nothing from cli/; the web faces import neither cli/ nor population/; no cycle among the
modules of service/, dashboard/ or population/). Import-linter sees package-level cycles
only within a package; the module-level search below also finds a cycle that crosses
packages (service.state → dashboard.login → service.state), type-checking imports included,
because such a cycle forces imports hidden under ``TYPE_CHECKING`` or inside functions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "dashboard", "population", "review_app", "cli", "store", "fhirdata")
FACES = ("service", "dashboard", "population", "review_app")


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _module_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    cycles = []
    for module in sorted(graph.modules):
        if not module.startswith(FACES):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append((module, *chain))
    return cycles


def test_no_module_imports_itself_back() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _module_cycles(graph) == []


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    graph.add_import(importer="service.tenants", imported="service.state")
    assert ("service.state", "service.tenants", "service.state") in _module_cycles(graph)


FIRST_IMPORTS = (
    "service.auth",
    "service.tenants",
    "service.state",
    "dashboard.login",
    "dashboard.pages",
    "review_app",
)


def test_each_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each imported first, alone: a cycle through a package's ``__init__`` (which the graph
    above does not show) fails here with ImportError."""
    runs = {
        module: subprocess.Popen(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in FIRST_IMPORTS
    }
    errors = {module: run.communicate()[1] for module, run in runs.items()}
    failed = {m: errors[m][-2000:] for m, run in runs.items() if run.returncode != 0}
    assert failed == {}
