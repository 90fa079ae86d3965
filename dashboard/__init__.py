"""The commissioners' dashboard: ``/analytics`` pages, JSON and CSV export (``dashboard.pages``)
behind their own sign-in (``dashboard.login``); figures shaped from the audit store
(``dashboard.figures``, ``dashboard.data``). The CDS Hooks service mounts it; it serves no hook.
"""
