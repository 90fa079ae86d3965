"""The baseline for benchmark 2: a bare Flask endpoint under the same gunicorn config that only
parses the same request body and returns a fixed card. Whatever the real service costs beyond
this is the service's own work."""

from __future__ import annotations

import orjson
from flask import Flask, Response, request

_CARD = orjson.dumps(
    {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000001",
                "summary": "i-Port Advance: meets commissioning criteria (type 1 diabetes pathway)",
                "indicator": "info",
                "source": {"label": "bench"},
            }
        ]
    }
)


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/cds-services/<service_id>")
    def hook(service_id: str) -> Response:
        body = orjson.loads(request.get_data(cache=False))
        assert body["hook"]
        return Response(_CARD, mimetype="application/json")

    return app
