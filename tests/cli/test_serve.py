"""``iport-cds serve``: gunicorn with deploy/gunicorn.conf.py and the demo configuration, as
scripts/serve.sh runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.cli.conftest import Run, one_line_error
from tests.service_process import REPO_ROOT, free_port

Cli = Callable[..., Run]


def test_print_command(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPORT_CDS_CONFIG_FILE", raising=False)
    run = cli("serve", "--print-command")
    assert run.code == 0
    deploy = REPO_ROOT / "deploy"
    assert run.out.startswith(f"IPORT_CDS_CONFIG_FILE={deploy / 'demo-config.json'} ")
    assert f"-m gunicorn -c {deploy / 'gunicorn.conf.py'} 'service:create_app()'" in run.out


def test_an_explicit_config_file_is_kept(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPORT_CDS_CONFIG_FILE", "/etc/iport-cds.json")
    assert cli("serve", "--print-command").out.startswith(
        "IPORT_CDS_CONFIG_FILE=/etc/iport-cds.json "
    )


def test_missing_deploy_folder(cli: Cli, tmp_path: Path) -> None:
    run = cli("serve", "--deploy-dir", str(tmp_path))
    assert run.code == 2
    assert "cannot find deploy/gunicorn.conf.py" in one_line_error(run)


@pytest.mark.integration
def test_serve_runs_the_service(tmp_path: Path) -> None:
    """``python -m cli serve`` from another folder: discovery answers, with the demo config."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPORT_CDS_")}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = requests.get(
                    f"http://127.0.0.1:{port}/cds-services", timeout=1
                ).status_code
                break
            except requests.RequestException:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "serve.log").read_text()
        services = requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=5).json()
        assert "iport-advance-order-sign" in {s["id"] for s in services["services"]}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert f"discovery at http://127.0.0.1:{port}/cds-services" in text
    assert "demo-config.json" in text


def test_a_busy_port_says_which_setting_changes_it(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPORT_CDS_")}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "cli", "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode != 0
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "IPORT_CDS_BIND" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_card_in_a_minute_answers_with_the_card_it_describes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README "See a card in a minute": its request, posted to its service with the
    configuration the README's first command serves (every default policy), gets the one
    "meets" card the README describes — not a 412 for data another policy needs."""
    import json
    import re
    from datetime import UTC, datetime

    from service import create_app

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("### See a card in a minute", 1)[1].split("```", 2)[1]
    service = re.search(r"/cds-services/([a-z0-9-]+) ", block)
    body = re.search(r"-d @(\S+)", block)
    assert service is not None
    assert body is not None
    for name in [k for k in os.environ if k.startswith("IPORT_CDS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("IPORT_CDS_CONFIG_FILE", str(REPO_ROOT / "deploy" / "demo-config.json"))
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
            # the request's dates are fixed; the README says when its HbA1c leaves the lookback
            "CLOCK": lambda: datetime(2026, 11, 21, 10, 30, tzinfo=UTC),
        }
    )
    request = json.loads((REPO_ROOT / body.group(1)).read_text(encoding="utf-8"))
    resp = app.test_client().post(f"/cds-services/{service.group(1)}", json=request)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    (card,) = resp.json["cards"]
    assert card["indicator"] == "info"
    summary = "i-Port Advance: meets commissioning criteria (type 1 diabetes pathway)"
    assert summary in " ".join(readme.split())
    assert card["summary"] == summary


def test_the_readme_lists_every_service_the_default_configuration_serves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import re

    from service import create_app

    for name in [k for k in os.environ if k.startswith("IPORT_CDS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("IPORT_CDS_CONFIG_FILE", str(REPO_ROOT / "deploy" / "demo-config.json"))
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}"})
    served = {(s["hook"], s["id"]) for s in app.test_client().get("/cds-services").json["services"]}
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## What it does", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `([a-z-]+)` \| `([a-z0-9-]+)` \|", table, re.MULTILINE))
    assert listed == served
