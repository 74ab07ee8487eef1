"""Payload signing: HMAC-SHA256 (default) or Ed25519 signatures over a task envelope.

The signature covers a canonical sorted-key JSON of the envelope's id, name, queue, args, meta,
headers (without the signature headers), enqueuedAt, notBefore, priority, attempt, maxRetries
and visibilityTimeoutMs, so any change (including a retry's new attempt) needs a new
signature. Keys carry ids; the active key signs and every known key verifies, which allows
rotation. Ed25519 needs the ``cryptography`` package (``pip install "stemnb[signing]"``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from ._envelope import Envelope
from ._exceptions import SignatureError

__all__ = ["PayloadSigner", "SIGNATURE_HEADER", "SIGNATURE_KEY_HEADER", "canonical_payload"]

SIGNATURE_HEADER = "stem-signature"
SIGNATURE_KEY_HEADER = "stem-signature-key"
HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
_ALGORITHMS = (HMAC_SHA256, ED25519)


def canonical_payload(envelope: Envelope) -> bytes:
    """Return the bytes a signature covers for ``envelope``.

    Raises:
        SignatureError: args, meta or headers hold values that are not JSON data.
    """
    headers = {
        k: v
        for k, v in envelope.headers.items()
        if k not in (SIGNATURE_HEADER, SIGNATURE_KEY_HEADER)
    }
    vt = envelope.visibility_timeout
    body = {
        "id": envelope.id,
        "name": envelope.name,
        "queue": envelope.queue,
        "args": envelope.args,
        "meta": envelope.meta,
        "headers": headers,
        "enqueuedAt": envelope.enqueued_at,
        "notBefore": envelope.not_before,
        "priority": envelope.priority,
        "attempt": envelope.attempt,
        "maxRetries": envelope.max_retries,
        "visibilityTimeoutMs": None if vt is None else int(round(vt * 1000)),
    }
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SignatureError(
            f"task {envelope.id} cannot be signed: its payload is not JSON data ({exc})"
        ) from exc
    return text.encode("utf-8")


def _require_cryptography() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            'Ed25519 signing needs the cryptography package: pip install "stemnb[signing]"'
        ) from None
    return ed25519


def _as_bytes(where: str, key_id: str, value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{where} must be bytes or str, got {type(value).__name__}")


class PayloadSigner:
    """Signs envelopes and verifies their signatures.

    HMAC: ``keys`` maps key id -> shared secret (bytes). Ed25519: ``private_keys`` maps key id ->
    32-byte private seed (or a cryptography ``Ed25519PrivateKey``) to sign, ``public_keys`` key id
    -> 32-byte public key (or ``Ed25519PublicKey``) to verify; public keys are derived from
    private ones when missing. ``active_key`` (default: the only key) signs.

    Raises:
        ValueError: unknown algorithm, no keys, or ``active_key`` not among the keys.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes | str] | None = None,
        *,
        active_key: str | None = None,
        algorithm: str = HMAC_SHA256,
        public_keys: Mapping[str, Any] | None = None,
        private_keys: Mapping[str, Any] | None = None,
    ) -> None:
        algorithm = algorithm.lower()
        if algorithm not in _ALGORITHMS:
            raise ValueError(f"unknown signing algorithm {algorithm!r}; use one of {_ALGORITHMS}")
        self.algorithm = algorithm
        self._secrets: dict[str, bytes] = {}
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}
        if algorithm == HMAC_SHA256:
            self._secrets = {k: _as_bytes(f"keys[{k!r}]", k, v) for k, v in (keys or {}).items()}
            known = list(self._secrets)
        else:
            self._load_ed25519(private_keys or {}, public_keys or {})
            known = list(self._public)
        if not known:
            raise ValueError(f"a {algorithm} PayloadSigner needs at least one key")
        if active_key is None and len(known) == 1:
            active_key = known[0]
        signing = list(self._secrets) if algorithm == HMAC_SHA256 else list(self._private)
        if active_key is not None and active_key not in known:
            raise ValueError(
                f"active signing key {active_key!r} is not among the keys {sorted(known)}"
            )
        if active_key is None and signing:
            raise ValueError(f"several signing keys {sorted(known)}: name the active_key")
        self.active_key = active_key if active_key in signing else None

    def _load_ed25519(
        self, private_keys: Mapping[str, Any], public_keys: Mapping[str, Any]
    ) -> None:
        ed25519 = _require_cryptography()
        try:
            for key_id, value in private_keys.items():
                where = f"private_keys[{key_id!r}]"
                if not isinstance(value, ed25519.Ed25519PrivateKey):
                    value = ed25519.Ed25519PrivateKey.from_private_bytes(
                        _as_bytes(where, key_id, value)
                    )
                self._private[key_id] = value
                self._public[key_id] = value.public_key()
            for key_id, value in public_keys.items():
                where = f"public_keys[{key_id!r}]"
                if not isinstance(value, ed25519.Ed25519PublicKey):
                    value = ed25519.Ed25519PublicKey.from_public_bytes(
                        _as_bytes(where, key_id, value)
                    )
                self._public[key_id] = value
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    @property
    def key_ids(self) -> list[str]:
        """The ids of every key that can verify, sorted."""
        return sorted(self._secrets or self._public)

    def sign(self, envelope: Envelope) -> Envelope:
        """Return a copy of ``envelope`` carrying a signature by the active key.

        Raises:
            SignatureError: no key can sign (a verify-only signer) or the payload is not JSON data.
        """
        if self.active_key is None:
            raise SignatureError("this PayloadSigner has no private/active key and can only verify")
        payload = canonical_payload(envelope)
        if self.algorithm == HMAC_SHA256:
            raw = hmac.new(self._secrets[self.active_key], payload, hashlib.sha256).digest()
        else:
            raw = self._private[self.active_key].sign(payload)
        headers = dict(envelope.headers)
        headers[SIGNATURE_HEADER] = base64.b64encode(raw).decode("ascii")
        headers[SIGNATURE_KEY_HEADER] = self.active_key
        return envelope.replace(headers=headers)

    def verify(self, envelope: Envelope) -> None:
        """Check ``envelope``'s signature.

        Raises:
            SignatureError: the signature is missing, malformed, made with an unknown key id, or
                does not match the payload; the message says which.
        """
        signature = envelope.headers.get(SIGNATURE_HEADER)
        key_id = envelope.headers.get(SIGNATURE_KEY_HEADER)
        if not signature or not key_id:
            raise SignatureError(f"task {envelope.id} carries no signature")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(
                f"task {envelope.id} has a malformed signature (not base64)"
            ) from None
        if key_id not in (self._secrets or self._public):
            raise SignatureError(f"task {envelope.id} is signed with unknown key id {key_id!r}")
        payload = canonical_payload(envelope)
        if self.algorithm == HMAC_SHA256:
            expected = hmac.new(self._secrets[key_id], payload, hashlib.sha256).digest()
            if not hmac.compare_digest(raw, expected):
                raise SignatureError(f"task {envelope.id}: signature does not match its payload")
            return
        from cryptography.exceptions import InvalidSignature

        try:
            self._public[key_id].verify(raw, payload)
        except InvalidSignature:
            raise SignatureError(
                f"task {envelope.id}: signature does not match its payload"
            ) from None

    def is_valid(self, envelope: Envelope) -> bool:
        """Return whether :meth:`verify` accepts ``envelope``."""
        try:
            self.verify(envelope)
        except SignatureError:
            return False
        return True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PayloadSigner | None:
        """Build a signer from ``STEM_SIGNING_*`` variables, or return ``None`` when none is set.

        Reads ``STEM_SIGNING_ALGORITHM`` (``hmac-sha256`` default, or ``ed25519``),
        ``STEM_SIGNING_KEYS`` (HMAC, ``id:base64,...``), ``STEM_SIGNING_PRIVATE_KEYS`` /
        ``STEM_SIGNING_PUBLIC_KEYS`` (Ed25519, same format) and ``STEM_SIGNING_ACTIVE_KEY``.

        Raises:
            ValueError: a variable is malformed (the message names it) or the keys do not fit.
        """
        env = os.environ if environ is None else environ
        algorithm = env.get("STEM_SIGNING_ALGORITHM", HMAC_SHA256).strip().lower() or HMAC_SHA256
        names = ("STEM_SIGNING_KEYS", "STEM_SIGNING_PRIVATE_KEYS", "STEM_SIGNING_PUBLIC_KEYS")
        parsed = {name: _parse_key_list(name, env.get(name, "")) for name in names}
        if not any(parsed.values()):
            return None
        active = env.get("STEM_SIGNING_ACTIVE_KEY", "").strip() or None
        if algorithm == HMAC_SHA256:
            return cls(parsed["STEM_SIGNING_KEYS"], active_key=active, algorithm=algorithm)
        return cls(
            active_key=active,
            algorithm=algorithm,
            private_keys=parsed["STEM_SIGNING_PRIVATE_KEYS"],
            public_keys=parsed["STEM_SIGNING_PUBLIC_KEYS"],
        )

    def __repr__(self) -> str:
        return f"PayloadSigner({self.algorithm}, keys={self.key_ids}, active={self.active_key!r})"


def _parse_key_list(name: str, text: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id.strip() or not encoded.strip():
            raise ValueError(f"{name}: entry {item!r} is not of the form 'id:base64'")
        try:
            keys[key_id.strip()] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{name}: the key for id {key_id.strip()!r} is not valid base64"
            ) from None
    return keys
