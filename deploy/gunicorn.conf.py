"""gunicorn settings for iport-cds; every value can be set from the environment.

gunicorn -c deploy/gunicorn.conf.py "service:create_app()"

Every line gunicorn writes is one JSON object, like the service's own log lines: the access
log has the method, the path (never the query string), status, size, duration and request id;
no header, so no token, ever reaches it.

Metrics: gunicorn runs several worker processes, so prometheus-client's multiprocess mode is
used. ``PROMETHEUS_MULTIPROC_DIR`` names a directory only this server uses (the container sets
/tmp/prometheus); without it a private temporary directory is made and removed on exit. The
variable must be set before prometheus_client is first imported, i.e. before the app is loaded
(``preload_app``), hence here at the top level rather than in ``on_starting``, which gunicorn
calls after preloading.

Graceful shutdown: on SIGTERM the master stops listening and gives workers ``graceful_timeout``
seconds to finish the requests they are handling; only then are they killed.
"""

import errno
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import traceback

from gunicorn import glogging

bind = os.environ.get("IPORT_CDS_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("IPORT_CDS_WORKERS", "2"))
# Threads let one worker wait on FHIR servers for several requests at once. gunicorn's gthread
# worker whose event loop reads each request whole before a thread gets it, so slow clients
# (headers or body a byte at a time) hold no thread (service/buffered_worker.py).
worker_class = "service.buffered_worker.BufferedThreadWorker"
threads = int(os.environ.get("IPORT_CDS_THREADS", "8"))
# Open connections per worker, idle and still arriving ones included.
worker_connections = int(os.environ.get("IPORT_CDS_WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("IPORT_CDS_WORKER_TIMEOUT", "30"))
# In-flight requests get this long to finish after SIGTERM (keep it above the FHIR deadline).
graceful_timeout = int(os.environ.get("IPORT_CDS_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("IPORT_CDS_KEEPALIVE", "5"))
max_requests = int(os.environ.get("IPORT_CDS_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("IPORT_CDS_MAX_REQUESTS_JITTER", "100"))
# Worker heartbeat files; a read-only root filesystem needs a writable place (/tmp, /dev/shm).
worker_tmp_dir = os.environ.get("IPORT_CDS_WORKER_TMP_DIR") or None
# Access log: JSON (see JsonLogger), path without query string, no headers. "-" is stdout.
accesslog = os.environ.get("IPORT_CDS_ACCESS_LOG", "-") or None
# Used only if JsonLogger is replaced: %(U)s is the path only, no query string.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = os.environ.get("IPORT_CDS_LOG_LEVEL", "info").lower()
# Load the app (value sets, policy) once in the master so a bad file fails before forking.
preload_app = True
# gunicorn >= 25's control socket (~/.gunicorn/gunicorn.ctl) is not needed: signals do.
control_socket_disable = True
# Probe and scrape requests are not access-logged unless they fail (or this is "true").
_LOG_PROBES = os.environ.get("IPORT_CDS_ACCESS_LOG_PROBES", "false").lower() == "true"
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# ------------------------------------------------------------------- Prometheus multiprocess
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWN_DIR_ENV = "IPORT_CDS_METRICS_OWN_DIR"  # set when this file made the directory
_MASTER_ENV = "IPORT_CDS_METRICS_MASTER"  # the master pid that prepared the directory


def _in_use(address):
    """True when a TCP ``host:port`` cannot be bound because something already listens there."""
    host, _, port = address.rpartition(":")
    if address.startswith("unix:") or not port.isdigit():
        return False
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 (only a probe; closed at once)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


if os.environ.get(_MASTER_ENV) != str(os.getpid()):  # a first load, not a SIGHUP reload
    # gunicorn would retry for several seconds and then print a traceback: say what to change.
    for _address in bind.split(","):
        if _in_use(_address.strip()):
            raise SystemExit(
                f"iport-cds: {_address.strip()} is already in use by another program; choose "
                "another address with IPORT_CDS_BIND=HOST:PORT (iport-cds serve --bind HOST:PORT)"
            )
    if not os.environ.get(_MULTIPROC_ENV):
        os.environ[_MULTIPROC_ENV] = os.environ[_OWN_DIR_ENV] = tempfile.mkdtemp(
            prefix="iport-cds-metrics-"
        )
    os.makedirs(os.environ[_MULTIPROC_ENV], exist_ok=True)
    # Files left by an earlier run would be summed into this one's figures.
    for _name in os.listdir(os.environ[_MULTIPROC_ENV]):
        if _name.endswith(".db"):
            os.remove(os.path.join(os.environ[_MULTIPROC_ENV], _name))
    os.environ[_MASTER_ENV] = str(os.getpid())


def child_exit(server, worker):
    """A worker has gone: drop its live gauges (counters and histograms are kept)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    own = os.environ.get(_OWN_DIR_ENV)
    if own and own == os.environ.get(_MULTIPROC_ENV):
        shutil.rmtree(own, ignore_errors=True)


# --------------------------------------------------------------------------------- JSON logs
_ACCESS_FIELDS = ("method", "path", "status", "bytes", "duration_ms", "request_id", "remote")


class _JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}+00:00",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _ACCESS_FIELDS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            # gunicorn's own failures (boot, worker crash): request data never gets here.
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(line, default=str, separators=(",", ":"))


class JsonLogger(glogging.Logger):
    """gunicorn's logger with JSON lines, and an access log that holds no header or query."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(_JsonFormatter())

    def access(self, resp, req, environ, request_time):
        if not getattr(self, "access_log_enabled", bool(self.cfg.accesslog)):
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        try:
            status = int(status)
        except (TypeError, ValueError):
            status = 0
        path = (environ.get("PATH_INFO") or "")[:200]
        if path in _QUIET_PATHS and status < 400 and not _LOG_PROBES:
            return
        request_id = None
        for name, value in resp.headers:
            if name.lower() == "x-request-id":
                request_id = value
        self.access_log.info(
            "request",
            extra={
                "method": environ.get("REQUEST_METHOD"),
                "path": path,
                "status": status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
                "request_id": request_id,
                "remote": environ.get("REMOTE_ADDR"),
            },
        )


logger_class = JsonLogger


def when_ready(server):
    """The app is loaded (preload_app) and workers are about to fork: freeze start-up objects
    out of the garbage collector so workers share them copy-on-write and requests do not
    re-walk them (see service/runtime.py and bench/results/evaluation.md)."""
    from service.runtime import tune_gc

    tune_gc()
