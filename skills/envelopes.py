"""DSSE v1 envelopes over skill manifests, with securesystemslib doing the cryptography.

`securesystemslib.dsse.Envelope` gives the pre-authentication encoding (PAE) and signing; its keys
(`SSlibKey`, Ed25519 and ECDSA P-256/SHA-256) verify. Two things DSSE allows that `Envelope.from_dict` and
`Envelope.verify` do not, handled here: a signature without a `keyid` (it is tried against every key of the
publisher), and unknown fields (ignored). A key's id is the SHA-256 of its DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError

PAYLOAD_TYPE = "application/vnd.controlplane.skill.v1+json"
ROTATION_PAYLOAD_TYPE = "application/vnd.controlplane.publisher-keys.v1+json"
SCHEMES = {"ed25519": "ed25519", "ecdsa": "ecdsa-sha2-nistp256"}


@dataclass(frozen=True)
class ParsedEnvelope:
    """A DSSE envelope as received: the payload bytes, its type, and each signature (keyid may be '')."""

    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, bytes], ...]

    @property
    def pae(self) -> bytes:
        return Envelope(self.payload, self.payload_type, {}).pae()


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ControlPlaneError("SKILL_ENVELOPE_INVALID", f"{what} must be a base64 string")
    try:  # DSSE accepts standard and URL-safe base64, padded or not
        padded = value + "=" * (-len(value) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ControlPlaneError("SKILL_ENVELOPE_INVALID", f"{what} is not base64") from exc


def envelope_parse(data: Any) -> ParsedEnvelope:
    """Parse a DSSE envelope (a JSON object); raise SKILL_ENVELOPE_INVALID when it is not one."""
    if not isinstance(data, dict):
        raise ControlPlaneError("SKILL_ENVELOPE_INVALID", "a DSSE envelope is a JSON object")
    if not isinstance(data.get("payloadType"), str):
        raise ControlPlaneError("SKILL_ENVELOPE_INVALID", "payloadType must be a string")
    signatures = data.get("signatures", [])
    if not isinstance(signatures, list) or not all(isinstance(s, dict) for s in signatures):
        raise ControlPlaneError("SKILL_ENVELOPE_INVALID", "signatures must be a list of objects")
    parsed = []
    for index, entry in enumerate(signatures):
        keyid = entry.get("keyid", "") or ""
        if not isinstance(keyid, str):
            raise ControlPlaneError("SKILL_ENVELOPE_INVALID", f"signatures[{index}].keyid must be a string")
        parsed.append((keyid, _b64(entry.get("sig"), f"signatures[{index}].sig")))
    return ParsedEnvelope(_b64(data.get("payload"), "payload"), data["payloadType"], tuple(parsed))


def envelope_hash(data: dict) -> str:
    """SHA-256 of the envelope's canonical JSON: what an install is bound to."""
    return hashlib.sha256(canonical_bytes(data)).hexdigest()


def key_id_of(public_key: Any) -> str:
    """SHA-256 of a public key's DER SubjectPublicKeyInfo (hex)."""
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_key_load(pem: str) -> tuple[str, str, str]:
    """(key id, scheme, normalised PEM) of an Ed25519 or ECDSA P-256 public key; PUBLISHER_INVALID else."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ControlPlaneError("PUBLISHER_INVALID", "the public key is not a PEM public key") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        scheme = SCHEMES["ed25519"]
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        scheme = SCHEMES["ecdsa"]
    else:
        raise ControlPlaneError("PUBLISHER_INVALID", "keys are Ed25519 or ECDSA P-256")
    normalised = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return key_id_of(key), scheme, normalised


def sslib_key(*, key_id: str, pem: str, scheme: str) -> SSlibKey:
    """The securesystemslib key that verifies signatures of this trust-store key."""
    return SSlibKey.from_crypto(load_pem_public_key(pem.encode()), keyid=key_id, scheme=scheme)


def signature_verifies(key: SSlibKey, envelope: ParsedEnvelope, keyid: str, sig: bytes) -> bool:
    """Whether `sig` (declaring `keyid`, possibly '') is a valid signature of `key` over the PAE."""
    if keyid and keyid != key.keyid:
        return False
    try:
        key.verify_signature(Signature(key.keyid, sig.hex()), envelope.pae)
    except (UnverifiedSignatureError, VerificationError):
        return False
    return True


def signer_load(private_pem: bytes) -> CryptoSigner:
    """A securesystemslib signer for a PEM (PKCS#8) Ed25519 or ECDSA P-256 private key, keyid = our key id."""
    private_key = load_pem_private_key(private_pem, None)
    public = private_key.public_key()
    _, scheme, pem = public_key_load(
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    )
    return CryptoSigner(private_key, sslib_key(key_id=key_id_of(public), pem=pem, scheme=scheme))


def envelope_sign(*, payload: bytes, signers: list[CryptoSigner], payload_type: str = PAYLOAD_TYPE) -> dict:
    """A DSSE envelope over `payload`, signed by each signer (publisher tooling: `manage.py skills sign`)."""
    envelope = Envelope(payload, payload_type, {})
    for signer in signers:
        envelope.sign(signer)
    return envelope.to_dict()


def keypair_generate(*, scheme: str = "ed25519") -> tuple[bytes, str]:
    """(private PEM, public PEM) of a new Ed25519 (default) or ECDSA P-256 key."""
    signer = CryptoSigner.generate_ed25519() if scheme == "ed25519" else CryptoSigner.generate_ecdsa()
    private_pem = signer.private_bytes
    public = load_pem_private_key(private_pem, None).public_key()
    return private_pem, public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
