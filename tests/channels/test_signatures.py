"""Standard Webhooks signing and verification: the published test vector and properties."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from controlplane.kernel import signatures

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

ED25519_SEED = bytes(range(32))
webhook_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="."),
    min_size=1,
    max_size=40,
)
timestamps = st.integers(min_value=0, max_value=2**40)


def _raw(signature: str) -> bytes:
    return base64.b64decode(signature.partition(",")[2])


def test_sign_hmac_reproduces_the_published_vector():
    assert signatures.sign_hmac(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_published_vector_verifies_and_a_changed_byte_does_not():
    content = signatures.signed_content(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert content == b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
    candidates = [s.raw for s in signatures.parse_signatures(f"v1,bm9wZQ== {VECTOR_SIGNATURE}")]
    assert signatures.hmac_matches(VECTOR_SECRET, content, candidates)
    tampered = signatures.signed_content(VECTOR_ID, VECTOR_TIMESTAMP, b'{"test": 2432232315}')
    assert not signatures.hmac_matches(VECTOR_SECRET, tampered, candidates)


def test_parse_signatures_keeps_v1_and_v1a_and_skips_the_rest():
    header = "v1,AAEC v2,AAEC v1a,AwQF garbage v1,not*base64 v1a"
    assert [(s.version, s.raw) for s in signatures.parse_signatures(header)] == [
        ("v1", b"\x00\x01\x02"),
        ("v1a", b"\x03\x04\x05"),
    ]
    assert signatures.parse_signatures("") == []


def test_generated_secret_is_whsec_and_32_random_bytes():
    secret = signatures.hmac_secret_generate()
    assert secret.startswith("whsec_")
    assert len(signatures.hmac_key(secret)) == 32
    assert signatures.hmac_secret_generate() != secret


@pytest.mark.parametrize("secret", ["whsec_", "whsec_***", "whsec_abc"])
def test_a_malformed_secret_is_refused(secret):
    with pytest.raises(ValueError):
        signatures.hmac_key(secret)


def test_ed25519_public_key_normalisation():
    private_key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    text = signatures.ed25519_public_key_text(private_key)
    assert signatures.ed25519_public_key_normalise(text) == text
    assert signatures.ed25519_public_key_normalise(f"whpk_{text}\n") == text
    for bad in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            signatures.ed25519_public_key_normalise(bad)


def test_sign_ed25519_accepts_a_key_object_its_seed_or_whsk_text():
    private_key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    whsk = "whsk_" + base64.b64encode(ED25519_SEED).decode()
    expected = signatures.sign_ed25519(private_key, "msg_1", 1, b"{}")
    assert expected.startswith("v1a,") and len(_raw(expected)) == 64
    assert signatures.sign_ed25519(ED25519_SEED, "msg_1", 1, b"{}") == expected
    assert signatures.sign_ed25519(whsk, "msg_1", 1, b"{}") == expected


@given(webhook_id=webhook_ids, timestamp=timestamps, body=st.binary(max_size=300))
def test_hmac_round_trip_and_every_field_is_bound(webhook_id, timestamp, body):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    signature = signatures.sign_hmac(secret, webhook_id, timestamp, body)
    content = signatures.signed_content(webhook_id, timestamp, body)
    assert signatures.hmac_matches(secret, content, [_raw(signature)])
    for other in (
        signatures.signed_content(webhook_id + "x", timestamp, body),
        signatures.signed_content(webhook_id, timestamp + 1, body),
        signatures.signed_content(webhook_id, timestamp, body + b" "),
    ):
        assert not signatures.hmac_matches(secret, other, [_raw(signature)])
    other_secret = "whsec_" + base64.b64encode(b"j" * 32).decode()
    assert not signatures.hmac_matches(other_secret, content, [_raw(signature)])


@given(webhook_id=webhook_ids, timestamp=timestamps, body=st.binary(max_size=300), flip=st.integers(0, 10**6))
def test_ed25519_round_trip_and_a_flipped_bit_fails(webhook_id, timestamp, body, flip):
    private_key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    public_key = signatures.ed25519_public_key_text(private_key)
    signature = _raw(signatures.sign_ed25519(private_key, webhook_id, timestamp, body))
    content = signatures.signed_content(webhook_id, timestamp, body)
    assert signatures.ed25519_matches(public_key, content, [signature])
    damaged = bytearray(content)
    damaged[flip % len(damaged)] ^= 1 << (flip % 8)
    assert not signatures.ed25519_matches(public_key, bytes(damaged), [signature])


@given(
    entries=st.lists(
        st.tuples(st.sampled_from(["v1", "v1a"]), st.binary(min_size=1, max_size=80)), max_size=6
    )
)
def test_signature_header_round_trips(entries):
    header = " ".join(f"{version},{base64.b64encode(raw).decode()}" for version, raw in entries)
    assert [(s.version, s.raw) for s in signatures.parse_signatures(header)] == entries
