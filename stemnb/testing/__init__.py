"""Test helpers for stemnb users and implementers.

- :func:`join` waits until a broker queue is drained (nothing ready, delayed or in flight).
- :func:`eventually` polls a condition with a deadline.
- :class:`BrokerContract`, :class:`ResultBackendContract`, :class:`LockStoreContract` and
  :class:`RevokeStoreContract` are the contract suites every implementation must pass: subclass
  one in a ``Test*`` class and supply its factory method. They import pytest, so they load on
  first use (``from stemnb.testing import BrokerContract``).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._helpers import eventually, join, unique_name

__all__ = [
    "BrokerContract",
    "LockStoreContract",
    "ResultBackendContract",
    "RevokeStoreContract",
    "eventually",
    "join",
    "unique_name",
]

_LAZY = {
    "BrokerContract": ".broker_contract",
    "ResultBackendContract": ".backend_contract",
    "LockStoreContract": ".store_contract",
    "RevokeStoreContract": ".store_contract",
}


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'stemnb.testing' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module, __name__), name)
