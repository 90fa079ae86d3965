"""Connections a client opens at once are shared by gunicorn's workers, over real gunicorn with
deploy/gunicorn.conf.py (service/buffered_worker.py: a worker that already holds connections
steps back from a new one for a moment). Kept-alive connections stay with the worker that
accepted them, so a client whose connections all land on one worker gets one process's GIL
while the other idles: half the throughput and twice the latency."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from tests.service_process import ServiceProcess

BURSTS = 20
AT_ONCE = 4


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _accepted_inodes(port: int, client_ports: set[int]) -> dict[int, int]:
    """client port -> inode of the service's end of that connection (IPv4 loopback)."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if int(local.split(":")[1], 16) == port and inode:
            client = int(remote.split(":")[1], 16)
            if client in client_ports:
                found[client] = inode
    return found


def _owners(svc: ServiceProcess, workers: list[int], socks: list[socket.socket]) -> list[int]:
    """Which worker holds each of ``socks``' connections, once every one is accepted."""
    ports = {s.getsockname()[1] for s in socks}
    deadline = time.monotonic() + 5
    while True:
        inodes = _accepted_inodes(svc.port, ports)
        held = {pid: _socket_inodes(pid) for pid in workers}
        owners = [pid for port in sorted(ports) for pid in workers if inodes.get(port) in held[pid]]
        if len(owners) == len(socks) or time.monotonic() > deadline:
            return owners
        time.sleep(0.01)


def test_connections_opened_at_once_go_to_both_workers() -> None:
    with ServiceProcess({"ACCESS_LOG": ""}, workers=2) as svc:
        workers = svc.worker_pids()
        assert len(workers) == 2
        on_one_worker = 0
        for _ in range(BURSTS):
            socks = [socket.create_connection(("127.0.0.1", svc.port)) for _ in range(AT_ONCE)]
            try:
                owners = _owners(svc, workers, socks)
            finally:
                for s in socks:
                    s.close()
            assert len(owners) == AT_ONCE, "a connection was not accepted within 5 s"
            on_one_worker += len(set(owners)) == 1
            time.sleep(0.05)
    # Without the step-back nearly every such burst lands on one worker (18 of 20 here).
    assert on_one_worker <= 1, f"{on_one_worker} of {BURSTS} bursts all on one worker"
