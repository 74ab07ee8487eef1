"""stemnb's imports of loky, one thread at a time.

loky's package imports are circular (``loky`` imports ``loky.backend.context``, which needs
``loky.backend``...). Python checks only that a parent package is in ``sys.modules``, not that it
has finished initialising, so two threads that first import loky by different ways in (the main
thread ``loky.backend.resource_tracker`` for a shared-memory segment, the spawner thread
``loky.backend.process`` to start a process) can each hold a module lock the other waits for,
and Python raises ``_DeadlockError`` in one of them. Every import of loky in stemnb is made
holding :data:`loky_imports`.
"""

from __future__ import annotations

import threading

__all__ = ["loky_imports"]

loky_imports = threading.Lock()
"""Held while stemnb imports loky or one of its modules: ``with loky_imports: from loky import ...``."""
