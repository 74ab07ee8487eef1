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
}
