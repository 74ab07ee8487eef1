"""Riding out a broker that cannot be reached: a backoff between attempts, and a log that says
so when it starts and when it ends instead of a traceback on every poll."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .._backoff import backoff

log = logging.getLogger("stemnb.worker")


class Outage:
    """The consecutive failures of one of worker ``worker_id``'s loops (``what``: "consume")."""

    def __init__(self, worker_id: str, what: str) -> None:
        self.worker_id = worker_id
        self.what = what
        self.failures = 0
        self._since = 0.0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; return the seconds to wait before the next attempt (see
        ``stemnb._backoff``: 50 ms, doubling, at most 2 s). The first failure of an outage is
        logged with its traceback, later ones only at debug level."""
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
            log.warning("worker %s: %s failed (%s); trying again", self.worker_id, self.what, exc, exc_info=exc)
        else:
            log.debug("worker %s: %s failed again (%s)", self.worker_id, self.what, exc)
        return backoff(self.failures)

    def succeeded(self) -> None:
        """Record a success; an outage that ends is logged with its length."""
        if self.failures:
            log.warning(
                "worker %s: %s works again after %d failed attempts in %.1f s",
                self.worker_id, self.what, self.failures, time.monotonic() - self._since,
            )
            self.failures = 0

    def attempt(self, call: Callable[[], object]) -> None:
        """Run ``call`` for a loop that simply tries again next time (a timer's tick): its
        failure is recorded as above, never raised."""
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - logged once per outage by failed()
            self.failed(exc)
            return
        self.succeeded()
