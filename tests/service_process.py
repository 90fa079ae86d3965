"""Run the real service on a free loopback port: under gunicorn with deploy/gunicorn.conf.py
(``ServiceProcess``), or an app built in the test on werkzeug's server in a thread
(``serving``), for browser tests that need the app object too."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import requests
from flask import Flask
from werkzeug.serving import make_server

from service.state import state_of

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` served on a free loopback port in a thread; yields its base URL, and closes the
    app's store afterwards."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        state_of(app).store.close()


class ServiceProcess:
    """``with ServiceProcess({"FHIR_ALLOW_LOOPBACK": "true"}) as svc: svc.url``

    Settings are IPORT_CDS_* names without the prefix; REQUIRE_AUTH defaults to "false" here
    (tests of authentication pass "true", a TRUSTED_ISSUERS_FILE and an EXTERNAL_BASE_URL:
    choose the ``port`` first with ``free_port()`` to know the URL).
    """

    def __init__(
        self, env: dict[str, str] | None = None, workers: int = 1, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {"REQUIRE_AUTH": "false", **(env or {})}
        # Without a DATABASE_URL of its own, each process writes its audit trail to a new,
        # empty database, not the checkout's instance folder, which would grow with every run.
        self._folder: Path | None = None
        if "DATABASE_URL" not in settings:
            self._folder = Path(tempfile.mkdtemp(prefix="iport-cds-process-"))
            settings["DATABASE_URL"] = f"sqlite:///{self._folder / 'audit.sqlite3'}"
        self._env = {f"IPORT_CDS_{k}": v for k, v in settings.items()}
        self._workers = workers
        self._log = tempfile.NamedTemporaryFile(prefix="iport-cds-", suffix=".log", delete=False)  # noqa: SIM115
        self._proc: subprocess.Popen[bytes] | None = None

    def worker_pids(self, timeout_s: float = 10.0) -> list[int]:
        """The pids of gunicorn's workers, once all ``workers`` have started."""
        assert self._proc is not None
        path = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        deadline = time.monotonic() + timeout_s
        while True:
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= self._workers or time.monotonic() > deadline:
                return pids
            time.sleep(0.05)

    @property
    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IPORT_CDS_")}
        env.update(self._env)
        env.update(
            IPORT_CDS_BIND=f"127.0.0.1:{self.port}",
            IPORT_CDS_WORKERS=str(self._workers),
            PYTHONUNBUFFERED="1",
        )
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self._proc = subprocess.Popen(
            [str(gunicorn), "-c", "deploy/gunicorn.conf.py", "service:create_app()"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the service exited during start-up:\n{self.log[-3000:]}")
            try:
                if requests.get(f"{self.url}/cds-services", timeout=1).status_code in (200, 401):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the service did not start within 30 s:\n{self.log[-3000:]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
