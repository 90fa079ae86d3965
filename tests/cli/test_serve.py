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
