"""Public names of the task queue's data layer (brokers, backends, stores, limiter, signing, encoders)."""

NAMES: dict[str, str] = {
    # envelopes and the broker interface
    "Envelope": "._envelope",
    "Delivery": "._envelope",
    "new_task_id": "._envelope",
    "MalformedEnvelopeError": "._exceptions",
    "Broker": "._broker",
    "Consumer": "._broker",
    "DeadLetterEntry": "._broker",
    "QueueStatistics": "._broker",
    "InMemoryBroker": "._brokers.memory",
    "RedisBroker": "._brokers.redis",
    # result backend interface
    "ResultBackend": "._backend",
    "TaskState": "._backend",
    "TaskStatus": "._backend",
    "GroupStatus": "._backend",
    "WorkerHeartbeat": "._backend",
    "InMemoryResultBackend": "._backends.memory",
    "RedisResultBackend": "._backends.redis",
    # retries and rate limits
    "RetryStrategy": "._retry",
    "ExponentialJitterRetryStrategy": "._retry",
    "TaskRetryPolicy": "._retry",
    "RateLimiter": "._ratelimit",
    "RateLimitDecision": "._ratelimit",
    "RateSpec": "._ratelimit",
    "TokenBucketRateLimiter": "._ratelimit",
    "parse_rate": "._ratelimit",
    # payload encoders and signing
    "TaskPayloadEncoder": "._encoders",
    "JsonTaskPayloadEncoder": "._encoders",
    "CloudpickleTaskPayloadEncoder": "._encoders",
    "TaskPayloadEncoderRegistry": "._encoders",
    "PayloadSigner": "._signing",
    # revocation and unique tasks
    "RevokeEntry": "._revoke",
    "RevokeStore": "._revoke",
    "InMemoryRevokeStore": "._revoke",
    "LockStore": "._unique",
    "InMemoryLockStore": "._unique",
    "UniqueTaskCoordinator": "._unique",
    "RedisLockStore": "._redis_stores",
    "RedisRevokeStore": "._redis_stores",
}
