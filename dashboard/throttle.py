"""The dashboard's sign-in throttle, kept apart from the sign-in's views: the app's state
(``service.state``) holds one, and this module imports nothing of the app."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import store


class LoginThrottle:
    """Failed sign-ins allowed per client address (and in all) per window, counted in the
    store so that every worker and pod shares the count; past that, sign-in answers 429
    without looking at the token. Addresses are kept only as an HMAC under the hash key."""

    def __init__(
        self,
        opened: store.AuditStore,
        key: bytes,
        per_address: int = 5,
        overall: int = 50,
        window_s: float = 900,
    ) -> None:
        self.store, self._key = opened, key
        self.per_address, self.overall, self.window_s = per_address, overall, window_s

    def _hash(self, address: str) -> str:
        return hmac.new(
            self._key, f"analytics-login:{address}".encode(), hashlib.sha256
        ).hexdigest()

    def claim(self, address: str, now: float) -> store.LoginClaim:
        """A try for ``address``, counted as a wrong token until ``right_token`` says
        otherwise; claiming and counting are one step, so racing tries cannot pass the limit.
        Refused: ``retry_after_s`` says when to try again."""
        return self.store.claim_login_try(
            self._hash(address),
            datetime.fromtimestamp(now, UTC),
            timedelta(seconds=self.window_s),
            self.per_address,
            self.overall,
        )

    def right_token(self, claim: store.LoginClaim) -> None:
        self.store.release_login_try(claim)
