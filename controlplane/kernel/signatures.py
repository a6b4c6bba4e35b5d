"""Standard Webhooks signatures (https://www.standardwebhooks.com), pure functions with no database.

The signed content is `f"{webhook_id}.{timestamp}.".encode() + raw_body`. A signature is serialised as
`<version>,<base64>`: `v1` for HMAC-SHA256 keyed with the bytes behind a `whsec_<base64>` secret, `v1a`
for Ed25519. `webhook-signature` carries one or more of them separated by spaces (key rotation).

Producers, tests, the benchmark and the docs sign with `sign_hmac` and `sign_ed25519`; the ingest
service verifies with `hmac_matches` and `ed25519_matches`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC_VERSION = "v1"
ED25519_VERSION = "v1a"
SECRET_PREFIX = "whsec_"  # noqa: S105  (a label, not a secret)
PUBLIC_KEY_PREFIX = "whpk_"
PRIVATE_KEY_PREFIX = "whsk_"
HMAC_SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


@dataclass(frozen=True)
class Signature:
    """One parsed entry of a `webhook-signature` header."""

    version: str
    raw: bytes


def signed_content(webhook_id: str, timestamp: int | str, body: bytes) -> bytes:
    """The exact bytes that are signed: `{webhook_id}.{timestamp}.{body}`."""
    return f"{webhook_id}.{timestamp}.".encode() + body


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hmac_secret_generate() -> str:
    """A fresh `whsec_` secret: base64 of 32 random bytes."""
    return SECRET_PREFIX + _b64encode(secrets.token_bytes(HMAC_SECRET_BYTES))


@lru_cache(maxsize=1024)
def hmac_key(secret: str) -> bytes:
    """The HMAC key bytes behind a `whsec_<base64>` secret (the prefix is optional). ValueError if bad."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = _b64decode(encoded)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("an HMAC secret is whsec_ followed by base64") from exc
    if not key:
        raise ValueError("an HMAC secret may not be empty")
    return key


def sign_hmac(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over the signed content, keyed by the `whsec_` secret."""
    digest = hmac.new(hmac_key(secret), signed_content(webhook_id, timestamp, body), hashlib.sha256).digest()
    return f"{HMAC_VERSION},{_b64encode(digest)}"


def ed25519_private_key(value: Ed25519PrivateKey | bytes | str) -> Ed25519PrivateKey:
    """A private key from an object, its 32-byte seed, or base64 of the seed (optionally `whsk_`)."""
    if isinstance(value, Ed25519PrivateKey):
        return value
    if isinstance(value, str):
        value = _b64decode(value.removeprefix(PRIVATE_KEY_PREFIX))
    return Ed25519PrivateKey.from_private_bytes(value)


def sign_ed25519(
    private_key: Ed25519PrivateKey | bytes | str, webhook_id: str, timestamp: int, body: bytes
) -> str:
    """`v1a,<base64 Ed25519 signature>` over the signed content."""
    signature = ed25519_private_key(private_key).sign(signed_content(webhook_id, timestamp, body))
    return f"{ED25519_VERSION},{_b64encode(signature)}"


def ed25519_public_key_text(private_key: Ed25519PrivateKey) -> str:
    """Base64 of the raw 32-byte public key: what `--ed25519-public-key` and the admin expect."""
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64encode(raw)


def ed25519_public_key_normalise(text: str) -> str:
    """Validate a public key given as base64 of its 32 raw bytes (optionally `whpk_`); return the base64.

    Raises ValueError when it is not base64 of exactly 32 bytes or not a point Ed25519 accepts.
    """
    try:
        raw = _b64decode(text.strip().removeprefix(PUBLIC_KEY_PREFIX))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("an Ed25519 public key is base64 of its 32 raw bytes") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    Ed25519PublicKey.from_public_bytes(raw)
    return _b64encode(raw)


@lru_cache(maxsize=1024)
def ed25519_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_b64decode(text))


def parse_signatures(header: str) -> list[Signature]:
    """The `v1` and `v1a` entries of a `webhook-signature` header; unknown or garbled entries are skipped."""
    parsed = []
    for entry in header.split():
        version, sep, encoded = entry.partition(",")
        if not sep or version not in (HMAC_VERSION, ED25519_VERSION):
            continue
        try:
            raw = _b64decode(encoded)
        except (binascii.Error, UnicodeEncodeError):
            continue
        parsed.append(Signature(version, raw))
    return parsed


def hmac_matches(secret: str, content: bytes, candidates: Iterable[bytes]) -> bool:
    """True when any candidate equals HMAC-SHA256(secret, content), compared in constant time."""
    expected = hmac.new(hmac_key(secret), content, hashlib.sha256).digest()
    matched = False
    for candidate in candidates:
        # Compare every candidate (no early exit) so timing does not reveal which one matched.
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def ed25519_matches(public_key: str, content: bytes, candidates: Iterable[bytes]) -> bool:
    """True when any candidate is a valid Ed25519 signature of `content` by `public_key` (base64)."""
    key = ed25519_public_key(public_key)
    for candidate in candidates:
        try:
            key.verify(candidate, content)
        except InvalidSignature:
            continue
        return True
    return False
