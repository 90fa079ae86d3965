#!/usr/bin/env bash
# Set up (idempotently) and run the service with the embedded demo configuration:
# gunicorn on http://127.0.0.1:8080, discovery at /cds-services.
# Environment variables IPORT_CDS_* override the demo settings (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
export IPORT_CDS_CONFIG_FILE="${IPORT_CDS_CONFIG_FILE:-deploy/demo-config.json}"
echo "iport-cds: discovery at http://${IPORT_CDS_BIND:-127.0.0.1:8080}/cds-services"
exec .venv/bin/gunicorn -c deploy/gunicorn.conf.py "service:create_app()"
