"""gunicorn settings for iport-cds; every value can be set from the environment.

gunicorn -c deploy/gunicorn.conf.py "service:create_app()"
"""

import os

bind = os.environ.get("IPORT_CDS_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("IPORT_CDS_WORKERS", "2"))
# Threads let one worker wait on FHIR servers for several requests at once.
worker_class = "gthread"
threads = int(os.environ.get("IPORT_CDS_THREADS", "8"))
timeout = int(os.environ.get("IPORT_CDS_WORKER_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("IPORT_CDS_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
max_requests = int(os.environ.get("IPORT_CDS_MAX_REQUESTS", "0"))
max_requests_jitter = 100
# Access log without query strings (%(U)s is the path only) and without headers.
accesslog = os.environ.get("IPORT_CDS_ACCESS_LOG", "-")
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
loglevel = os.environ.get("IPORT_CDS_LOG_LEVEL", "info").lower()
# Load the app (value sets, policy) once in the master so a bad file fails before forking.
preload_app = True
