"""``iport-cds serve``: what ``scripts/serve.sh`` does, from Python.

gunicorn with ``deploy/gunicorn.conf.py``, the demo configuration
(``deploy/demo-config.json``) unless ``IPORT_CDS_CONFIG_FILE`` names another, and every
``IPORT_CDS_*`` variable passed through. The process becomes gunicorn (exec).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TextIO

from cli.errors import EXIT_USAGE, CliError

_REPO_DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def find_deploy_dir(given: str | None) -> Path:
    candidates = [Path(given)] if given else [_REPO_DEPLOY, Path.cwd() / "deploy"]
    for d in candidates:
        if (d / "gunicorn.conf.py").is_file():
            return d.resolve()
    raise CliError(
        "cannot find deploy/gunicorn.conf.py: run from a checkout of iport-cds, "
        "or pass --deploy-dir DIR",
        EXIT_USAGE,
    )


def serve_command(
    deploy_dir: str | None, bind: str | None, workers: int | None
) -> tuple[list[str], dict[str, str]]:
    """The gunicorn command line and environment ``serve`` runs."""
    deploy = find_deploy_dir(deploy_dir)
    env = dict(os.environ)
    if not env.get("IPORT_CDS_CONFIG_FILE") and (deploy / "demo-config.json").is_file():
        env["IPORT_CDS_CONFIG_FILE"] = str(deploy / "demo-config.json")
    if bind:
        env["IPORT_CDS_BIND"] = bind
    if workers:
        env["IPORT_CDS_WORKERS"] = str(workers)
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(deploy / "gunicorn.conf.py"),
        "service:create_app()",
    ]
    return cmd, env


def run_serve(
    deploy_dir: str | None,
    bind: str | None,
    workers: int | None,
    print_only: bool,
    out: TextIO,
    err: TextIO,
) -> None:
    cmd, env = serve_command(deploy_dir, bind, workers)
    config = env.get("IPORT_CDS_CONFIG_FILE", "(defaults)")
    if print_only:
        out.write(f"IPORT_CDS_CONFIG_FILE={shlex.quote(config)} {shlex.join(cmd)}\n")
        return
    bind_to = env.get("IPORT_CDS_BIND", "127.0.0.1:8080")
    err.write(f"iport-cds: discovery at http://{bind_to}/cds-services (config: {config})\n")
    err.flush()
    sys.stdout.flush()
    os.execve(sys.executable, cmd, env)  # noqa: S606 - replaces this process with gunicorn
