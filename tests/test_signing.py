"""Payload signing: HMAC-SHA256 and Ed25519, key rotation, tamper detection, env configuration."""

from __future__ import annotations

import base64

import pytest

from stemnb import Envelope, PayloadSigner, SignatureError

SECRET = base64.b64encode(b"s" * 32).decode()


def _envelope(**changes):
    return Envelope("tasks.add", {"a": 1, "b": [2, 3]}, headers={"tenant": "acme"}, **changes)


def test_hmac_signed_envelope_verifies_and_carries_the_key_id():
    signer = PayloadSigner({"primary": b"secret"})
    signed = signer.sign(_envelope())
    assert signed.headers["stem-signature-key"] == "primary"
    signer.verify(signed)
    assert signer.is_valid(signed)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: e.replace(args={"a": 2, "b": [2, 3]}),
        lambda e: e.replace(attempt=1),
        lambda e: e.replace(queue="other"),
        lambda e: e.replace(meta={"x": 1}),
        lambda e: e.replace(headers={**e.headers, "tenant": "evil"}),
        lambda e: e.replace(visibility_timeout=5.0),
    ],
)
def test_tampered_envelope_fails_verification(tamper):
    signer = PayloadSigner({"primary": b"secret"})
    with pytest.raises(SignatureError, match="does not match"):
        signer.verify(tamper(signer.sign(_envelope())))


def test_unsigned_unknown_key_and_malformed_signatures_are_named():
    signer = PayloadSigner({"primary": b"secret"})
    with pytest.raises(SignatureError, match="no signature"):
        signer.verify(_envelope())
    other = PayloadSigner({"old": b"other"}).sign(_envelope())
    with pytest.raises(SignatureError, match="unknown key id 'old'"):
        signer.verify(other)
    bad = signer.sign(_envelope())
    bad = bad.replace(headers={**bad.headers, "stem-signature": "!!!"})
    with pytest.raises(SignatureError, match="malformed"):
        signer.verify(bad)


def test_key_rotation_verifies_old_signatures_and_signs_with_the_new_key():
    old = PayloadSigner({"k1": b"one"})
    rotated = PayloadSigner({"k1": b"one", "k2": b"two"}, active_key="k2")
    rotated.verify(old.sign(_envelope()))
    assert rotated.sign(_envelope()).headers["stem-signature-key"] == "k2"


def test_ed25519_signatures_verify_with_the_public_key_only():
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = ed25519.Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signer = PayloadSigner(algorithm="ed25519", private_keys={"ed": private})
    verifier = PayloadSigner(algorithm="ed25519", public_keys={"ed": public_raw})
    signed = signer.sign(_envelope())
    verifier.verify(signed)
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify(signed.replace(args={"a": 9}))
    with pytest.raises(SignatureError, match="only verify"):
        verifier.sign(_envelope())


def test_from_env_reads_hmac_keys_and_the_active_key():
    env = {
        "STEM_SIGNING_KEYS": f"primary:{SECRET}, backup:{SECRET}",
        "STEM_SIGNING_ACTIVE_KEY": "primary",
    }
    signer = PayloadSigner.from_env(env)
    assert signer.key_ids == ["backup", "primary"] and signer.active_key == "primary"
    signer.verify(signer.sign(_envelope()))


def test_from_env_returns_none_when_nothing_is_configured():
    assert PayloadSigner.from_env({}) is None


def test_from_env_reads_ed25519_keys():
    seed = base64.b64encode(b"\x01" * 32).decode()
    env = {"STEM_SIGNING_ALGORITHM": "ed25519", "STEM_SIGNING_PRIVATE_KEYS": f"ed:{seed}"}
    signer = PayloadSigner.from_env(env)
    assert signer.algorithm == "ed25519"
    signer.verify(signer.sign(_envelope()))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STEM_SIGNING_KEYS": "nocolon"}, "STEM_SIGNING_KEYS: entry 'nocolon'"),
        ({"STEM_SIGNING_KEYS": "k:***"}, "not valid base64"),
        ({"STEM_SIGNING_KEYS": f"a:{SECRET},b:{SECRET}"}, "name the active_key"),
        ({"STEM_SIGNING_KEYS": f"a:{SECRET}", "STEM_SIGNING_ACTIVE_KEY": "z"}, "'z' is not among"),
        (
            {"STEM_SIGNING_KEYS": f"a:{SECRET}", "STEM_SIGNING_ALGORITHM": "rsa"},
            "unknown signing algorithm",
        ),
        (
            {
                "STEM_SIGNING_ALGORITHM": "ed25519",
                "STEM_SIGNING_PRIVATE_KEYS": f"a:{base64.b64encode(b'x').decode()}",
            },
            "private_keys",
        ),
    ],
)
def test_from_env_refuses_misconfiguration_naming_the_problem(env, message):
    with pytest.raises(ValueError, match=message):
        PayloadSigner.from_env(env)


def test_signing_a_non_json_payload_is_a_clear_error():
    signer = PayloadSigner({"k": b"x"})
    with pytest.raises(SignatureError, match="not JSON data"):
        signer.sign(Envelope("t", {"s": {1, 2}}))
