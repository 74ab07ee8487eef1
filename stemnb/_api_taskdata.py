"""Public names of the task queue's data layer (brokers, backends, stores, limiter, signing, encoders)."""

NAMES: dict[str, str] = {}
