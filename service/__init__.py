"""The HTTP edge: a Flask app serving CDS Hooks 2.0 for the i-Port Advance policy.

flask --app service run
gunicorn -c deploy/gunicorn.conf.py "service:create_app()"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app (built by ``service.app.create_app``).

    Imported when called, not when this package is: the app mounts the dashboard and the
    review app, which import modules of this package, so importing any ``service`` module
    (the dashboard's sign-in importing ``service.errors``, say) must not import them back.
    """
    from service.app import create_app as build

    return build(config)
