"""Process-level tuning for a long-running service worker."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Freeze what start-up built (value sets, policies, the app) out of the garbage collector,
    and collect the young generation less often.

    A hook request allocates tens of thousands of short-lived dicts (the parsed prefetch);
    with the defaults, the collector then repeatedly walks every long-lived object too. Measured
    by bench/evaluation.py: p99 for a 500-resource request 44 → 7 ms, 5,000 resources 59 → 41 ms
    p50. Call once, after the app is built (gunicorn: in the master before forking, so frozen
    pages also stay shared copy-on-write between workers).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
