"""Test helpers for stemnb users and implementers.

- :func:`join` waits until a broker queue is drained (nothing ready, delayed or in flight).
- :func:`eventually` polls a condition with a deadline.
- ``stemnb.testing.broker_contract.BrokerContract`` and
  ``stemnb.testing.backend_contract.ResultBackendContract`` are the contract suites every broker
  and result backend must pass (they import pytest, so they load only when imported).
- ``stemnb.testing.store_contract`` holds the lock-store and revoke-store suites.
"""

from ._helpers import eventually, join, unique_name

__all__ = ["eventually", "join", "unique_name"]
