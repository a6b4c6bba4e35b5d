"""Channel secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under `CONTROLPLANE_SECRETS_KEY`.

The setting holds one or more Fernet keys (32 bytes, URL-safe base64), comma-separated: the first
encrypts, every one decrypts (`MultiFernet`), so a key is rotated by putting a new one first and
re-encrypting (`channels rotate-secret`). In development (`CONTROLPLANE_LEDGER_AUTOGENERATE_KEY`), with
no key set, one is generated on first use under `CONTROLPLANE_KEY_DIR` (mode 0600), as the ledger key
is; elsewhere a missing key fails closed with CHANNEL_SECRETS_KEY_UNAVAILABLE. Plaintext secrets never
reach the ledger, logs, the admin or the API.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from controlplane.kernel.errors import ControlPlaneError

_KEY_FILE = "channel-secrets.key"


def _generated_key() -> str:
    path = Path(settings.CONTROLPLANE_KEY_DIR) / _KEY_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key().decode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def _fernet() -> MultiFernet:
    configured = [k.strip() for k in settings.CONTROLPLANE_SECRETS_KEY.split(",") if k.strip()]
    if not configured:
        if not settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY:
            raise ControlPlaneError("CHANNEL_SECRETS_KEY_UNAVAILABLE", "set CONTROLPLANE_SECRETS_KEY")
        configured = [_generated_key()]
    try:
        return MultiFernet([Fernet(key.encode("ascii")) for key in configured])
    except (ValueError, UnicodeEncodeError) as exc:
        raise ControlPlaneError(
            "CHANNEL_SECRETS_KEY_UNAVAILABLE", "CONTROLPLANE_SECRETS_KEY is not a list of Fernet keys"
        ) from exc


def secrets_encrypt(values: dict[str, str]) -> str:
    """The secrets as one Fernet token under the first key."""
    return _fernet().encrypt(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).decode("ascii")


def secrets_decrypt(token: str) -> dict[str, str]:
    """The secrets a token holds; CHANNEL_SECRETS_KEY_UNAVAILABLE when no configured key opens it."""
    if not token:
        return {}
    try:
        return orjson.loads(_fernet().decrypt(token.encode("ascii")))
    except InvalidToken as exc:
        raise ControlPlaneError(
            "CHANNEL_SECRETS_KEY_UNAVAILABLE", "no configured key decrypts this connection's secrets"
        ) from exc


def secrets_reencrypt(token: str) -> str:
    """The same secrets under the first (newest) key."""
    return _fernet().rotate(token.encode("ascii")).decode("ascii") if token else token
