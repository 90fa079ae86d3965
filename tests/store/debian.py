"""Debian packages the test run needs (PostgreSQL, Chromium), installed on demand.

On a clean Debian machine running as root (as CI does), a missing package is installed with
apt-get, under a file lock so parallel test processes do not run apt-get twice. Anywhere else a
missing package fails the test run with a message saying what to install: never a skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

LOCK = Path(os.environ.get("TMPDIR", "/tmp")) / "iport-cds-apt.lock"


def _can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure(packages: list[str], present: Callable[[], bool]) -> None:
    """Install the Debian ``packages`` unless ``present()``; pytest.fail if that cannot be done."""
    package = " ".join(packages)
    if present():
        return
    if not _can_install():
        pytest.fail(
            f"the Debian package '{package}' is needed by these tests and is not installed; "
            f"run 'sudo apt-get install -y {package}' (the test run installs it itself only "
            "when it runs as root on Debian)",
            pytrace=False,
        )
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if present():  # another process installed it while we waited
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.fail(
                    f"'{' '.join(cmd)}' failed ({done.returncode}):\n{done.stderr[-2000:]}",
                    pytrace=False,
                )
    if not present():
        pytest.fail(f"installed '{package}' but still cannot find it", pytrace=False)
