"""Public names of the task queue (the Stem worker), each mapped to its home module."""

NAMES: dict[str, str] = {
    "TaskError": "._exceptions",
    "TaskRevokedError": "._exceptions",
    "TaskTimeLimitError": "._exceptions",
    "RateLimitSpecError": "._exceptions",
    "SignatureError": "._exceptions",
    "EncodingError": "._exceptions",
    "UnknownTaskError": "._exceptions",
}
