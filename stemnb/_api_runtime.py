"""Public names of the isolate runtime, each mapped to its home module (see ``stemnb.__init__``)."""

NAMES: dict[str, str] = {
    "StemnbError": "._exceptions",
    "SerializationError": "._exceptions",
    "RemoteError": "._exceptions",
    "RemoteTraceback": "._exceptions",
    "IsolateExitedError": "._exceptions",
    "ClosedError": "._exceptions",
    "CapabilityError": "._exceptions",
    "SharedMemoryError": "._exceptions",
    "SharedMemoryWarning": "._exceptions",
    "Future": "._future",
    "IsolatePool": "._pool",
    "IsolateRecycleReason": "._pool_types",
    "IsolateRecycleEvent": "._pool_types",
    "PoolStatistics": "._pool_types",
    "IsolateInfo": "._pool_types",
    "run": "._run",
    "default_pool": "._run",
}
