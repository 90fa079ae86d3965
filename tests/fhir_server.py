"""Run a real FHIR R4 server (sekmet-fhir, FastAPI + SQLite) for integration tests.

sekmet lives in its own virtualenv (default ``<repo>/.cache/sekmet-venv``) so its ~50
dependencies stay out of the project's environment; ``ensure_sekmet`` creates it on first
use, so a clean CI machine needs nothing but PyPI access.

    with FhirTestServer() as fhir:
        fhir.load(bundle)
        requests.get(f"{fhir.base_url}/Condition", params={"patient": "p1"})

Only the standard library and ``requests`` are used here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

SEKMET_REQUIREMENT = "sekmet-fhir==0.1.1"
SEKMET_VERSION = "0.1.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO_ROOT / ".cache" / "sekmet-venv"
FHIR_JSON = "application/fhir+json"

# sekmet reads these from the environment and they would override our config file.
_SEKMET_ENV_OVERRIDES = ("SEKMET_CONFIG", "SEKMET_BASE_URL", "SEKMET_PORT", "SEKMET_PUBLIC_URL")


class FhirServerError(RuntimeError):
    """The FHIR test server could not be installed, started, or loaded."""


# ---------------------------------------------------------------- installation


def _venv_bin(venv_dir: Path, name: str) -> Path:
    if os.name == "nt":
        return venv_dir / "Scripts" / f"{name}.exe"
    return venv_dir / "bin" / name


def _installed_ok(venv_dir: Path) -> bool:
    """True when the venv has a sekmet executable and the pinned sekmet-fhir version."""
    python, exe = _venv_bin(venv_dir, "python"), _venv_bin(venv_dir, "sekmet")
    if not (python.exists() and exe.exists()):
        return False
    probe = "import importlib.metadata as m; print(m.version('sekmet-fhir'))"
    try:
        out = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == SEKMET_VERSION


@contextlib.contextmanager
def _install_lock(venv_dir: Path):
    """Exclusive lock so two processes (e.g. pytest-xdist workers) don't install at once."""
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv_dir.parent / f"{venv_dir.name}.lock"
    try:
        import fcntl
    except ImportError:  # Windows: no lock, installs are rare enough
        yield
        return
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_checked(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise FhirServerError(f"{what} timed out after {timeout:.0f} s: {' '.join(cmd)}") from e
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise FhirServerError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def ensure_sekmet(venv_dir: Path = DEFAULT_VENV) -> Path:
    """Make sure ``venv_dir`` holds sekmet-fhir 0.1.1 and return its ``sekmet`` executable.

    Fast (~0.1 s) when already installed; otherwise creates the venv and pip-installs
    sekmet-fhir into it (~15-30 s, needs PyPI).
    """
    venv_dir = Path(venv_dir).resolve()
    exe = _venv_bin(venv_dir, "sekmet")
    if _installed_ok(venv_dir):
        return exe
    with _install_lock(venv_dir):
        if _installed_ok(venv_dir):  # another process installed it while we waited
            return exe
        python = _venv_bin(venv_dir, "python")
        if not python.exists():
            if venv_dir.exists():
                shutil.rmtree(venv_dir)
            _run_checked([sys.executable, "-m", "venv", str(venv_dir)], "creating venv", 300)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run_checked([*pip, SEKMET_REQUIREMENT], f"pip install {SEKMET_REQUIREMENT}", 900)
        if not _installed_ok(venv_dir):
            raise FhirServerError(f"{SEKMET_REQUIREMENT} installed into {venv_dir} but not usable")
    return exe


# ---------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the server if the thread that started it dies (e.g. pytest killed)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class FhirTestServer:
    """A sekmet FHIR R4 server on a free loopback port, with an in-memory database.

    Use as a context manager (or call ``start()``/``stop()``). ``base_url`` ends in ``/fhir``
    without a trailing slash. Each instance starts empty.

    ``validation`` is sekmet's inbound validation mode: "strict" (default; malformed resources
    get 400, checked against the fhir.resources R4B models), "warn" or "off".

    sekmet has no setting to add response latency, so there is no ``latency_ms`` knob.
    """

    def __init__(
        self,
        sekmet: Path | None = None,
        *,
        venv_dir: Path = DEFAULT_VENV,
        startup_timeout: float = 30.0,
        validation: str = "strict",
    ) -> None:
        self._sekmet = Path(sekmet) if sekmet else None
        self._venv_dir = Path(venv_dir)
        self.startup_timeout = startup_timeout
        self.validation = validation
        self.port: int | None = None
        self.base_url = ""
        self.startup_seconds: float | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    # -- lifecycle

    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            raise FhirServerError("server not started")
        return Path(self._tmp.name)

    @property
    def log_path(self) -> Path:
        return self.workdir / "sekmet.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except (OSError, FhirServerError):
            return "(no log)"

    def start(self) -> FhirTestServer:
        if self._proc is not None:
            raise FhirServerError("server already started")
        exe = self._sekmet or ensure_sekmet(self._venv_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="sekmet-")
        last_error: FhirServerError | None = None
        for _ in range(3):  # retry only if another process grabbed the port meanwhile
            try:
                self._launch(exe)
                return self
            except FhirServerError as e:
                last_error = e
                self._kill()
                if "address already in use" not in str(e).lower():
                    break
        self._cleanup()
        assert last_error is not None
        raise last_error

    def _launch(self, exe: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        cfg = {
            "host": "127.0.0.1",
            "port": self.port,
            "base_url": self.base_url,
            "data_dir": str(self.workdir / "data"),
            "own_private_key_path": str(self.workdir / "keys" / "sekmet_private.pem"),
            "simulator": {"enabled": False},
            "log_inbound": False,
            "validation": {"inbound": self.validation},
        }
        cfg_path = self.workdir / "cfg.yaml"
        cfg_path.write_text(json.dumps(cfg, indent=2))  # JSON is valid YAML
        env = {k: v for k, v in os.environ.items() if k not in _SEKMET_ENV_OVERRIDES}
        env["SEKMET_DB"] = ":memory:"
        env["PYTHONUNBUFFERED"] = "1"
        started = time.monotonic()
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self._proc = subprocess.Popen(
                [str(exe), "serve", "-c", str(cfg_path)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        deadline = started + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise FhirServerError(
                    f"sekmet exited with code {code} during startup on port {self.port}.\n"
                    f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                r = self.session.get(f"{self.base_url}/metadata", timeout=2)
                if r.status_code == 200:
                    self.startup_seconds = time.monotonic() - started
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise FhirServerError(
                    f"sekmet did not answer GET {self.base_url}/metadata with 200 within "
                    f"{self.startup_timeout:.0f} s.\n--- {self.log_path} (tail) ---\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def stop(self) -> None:
        self._kill()
        self.session.close()
        self._cleanup()

    def __enter__(self) -> FhirTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- data

    def load(self, bundle: dict) -> dict:
        """POST a transaction (or batch) Bundle to the base; return the response Bundle.

        Raises FhirServerError on an HTTP error, and for a batch if any entry failed.
        """
        r = self.session.post(
            self.base_url,
            data=json.dumps(bundle),
            headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
            timeout=60,
        )
        if r.status_code != 200:
            raise FhirServerError(f"loading Bundle failed: HTTP {r.status_code}: {r.text[:3000]}")
        body = r.json()
        failed = [
            e.get("response", {})
            for e in body.get("entry", [])
            if not str(e.get("response", {}).get("status", "")).startswith(("2", "3"))
        ]
        if failed:
            detail = json.dumps(failed)[:3000]
            raise FhirServerError(f"{len(failed)} Bundle entries failed: {detail}")
        return body
