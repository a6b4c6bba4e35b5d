"""Ed25519 key material for the ledger: key ids, private-key storage, signing and verifying.

Private keys never enter the database or the repository. They come from `CONTROLPLANE_LEDGER_KEY`
(base64 of the 32-byte seed of the active key) or from one file per key under `CONTROLPLANE_KEY_DIR`
(mode 0600). The database holds only public keys and their validity (the trust store).

Keys are made and stored with `cryptography`; signing and verification use libsodium through PyNaCl,
which checks an Ed25519 signature in about 57 us on the benchmark machine against 97 us for
`cryptography`'s OpenSSL 3.0, and signs in 20 us against 31 us (docs/benchmarks.md): every append signs
under the chain's lock, and verification is where the ledger spends its time. Ed25519 signatures are
deterministic, so both libraries make the same bytes (a test holds them equal); libsodium is the
stricter verifier (it also refuses small-order keys and non-canonical encodings).
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError


def public_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seed_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def key_id_for(public_key: bytes) -> str:
    """A key's id is derived from its public key, so it cannot be reassigned to other material."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _key_path(key_id: str) -> Path:
    return Path(settings.CONTROLPLANE_KEY_DIR) / (key_id.replace(":", "_") + ".key")


def store_private_key(private_key: Ed25519PrivateKey) -> str:
    """Write a new private key to the key directory (0600) and return its key id."""
    key_id = key_id_for(public_bytes(private_key))
    path = _key_path(key_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(b64(seed_bytes(private_key)) + "\n")
    return key_id


@cache
def _env_key() -> tuple[str, Ed25519PrivateKey] | None:
    seed = settings.CONTROLPLANE_LEDGER_KEY.strip()
    if not seed:
        return None
    private_key = Ed25519PrivateKey.from_private_bytes(unb64(seed))
    return key_id_for(public_bytes(private_key)), private_key


def configured_private_key() -> Ed25519PrivateKey | None:
    """The key given in CONTROLPLANE_LEDGER_KEY, if any."""
    from_env = _env_key()
    return from_env[1] if from_env else None


_loaded: dict[str, Ed25519PrivateKey] = {}


class Signer:
    """Signs with a private key through libsodium (the same signatures as `Ed25519PrivateKey.sign`)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        _, self._secret = crypto_sign_seed_keypair(seed_bytes(private_key))

    def sign(self, message: bytes) -> bytes:
        return crypto_sign(message, self._secret)[:64]


_signers: dict[str, Signer] = {}


def signer_for(key_id: str) -> Signer | None:
    """A libsodium signer for `key_id`'s private key (see `load_private_key`), or None."""
    if key_id not in _signers:
        private_key = load_private_key(key_id)
        if private_key is None:
            return None
        _signers[key_id] = Signer(private_key)
    return _signers[key_id]


def load_private_key(key_id: str) -> Ed25519PrivateKey | None:
    """The private key for `key_id` from the environment or the key directory, or None."""
    if key_id in _loaded:
        return _loaded[key_id]
    from_env = _env_key()
    if from_env and from_env[0] == key_id:
        _loaded[key_id] = from_env[1]
        return from_env[1]
    path = _key_path(key_id)
    if not path.exists():
        return None
    private_key = Ed25519PrivateKey.from_private_bytes(unb64(path.read_text().strip()))
    if key_id_for(public_bytes(private_key)) != key_id:
        return None
    _loaded[key_id] = private_key
    return private_key


def forget_loaded_keys() -> None:
    """Drop cached private keys (tests switch key directories)."""
    _loaded.clear()
    _signers.clear()
    _env_key.cache_clear()


@cache
def _public_key_raw(public_key_b64: str) -> bytes:
    return unb64(public_key_b64)


def verify_signature(public_key_b64: str, signature_b64: str, message: bytes) -> bool:
    """True when `signature_b64` is a valid Ed25519 signature of `message` by the (base64) public key."""
    try:
        public_key = _public_key_raw(public_key_b64)
        signature = unb64(signature_b64)
        if len(public_key) != 32 or len(signature) != 64:
            return False
        crypto_sign_open(signature + message, public_key)
    except (CryptoError, ValueError):
        return False
    return True
