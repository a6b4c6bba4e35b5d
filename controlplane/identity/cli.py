"""Who a management command acts for.

Commands that act for a person (approvals, incident transitions, silences, the kill switch, policy
create/activate) authenticate that person exactly as the API does: with an API token, read from
`--token-file PATH` or the `CONTROLPLANE_TOKEN` environment variable, never from a name typed on the
command line. The principal the token resolves to then meets the same capability check as the API view
and goes through the same services (so separation of duties and quorum hold the same way).

Installation commands (migrate, keys, witness, principals, producers, runners, demo, quickstart_admin)
stay shell-privileged: whoever can run them owns the installation. The events they append name the shell
user, `cli:<os user>@<host>`, so the ledger says who did it and where.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from controlplane.identity import services
from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.shell import cli_actor

__all__ = ["TOKEN_ENV", "add_token_argument", "cli_actor", "cli_principal"]

TOKEN_ENV = "CONTROLPLANE_TOKEN"  # noqa: S105 - the variable's name, not a secret


def add_token_argument(parser: ArgumentParser) -> None:
    """The `--token-file` option every acting command takes (`CONTROLPLANE_TOKEN` when absent)."""
    parser.add_argument(
        "--token-file",
        dest="token_file",
        help=f"a file holding the API token of the person acting (default: ${TOKEN_ENV})",
    )


def _token_secret(options: dict[str, Any]) -> str:
    path = options.get("token_file")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ControlPlaneError(
                "AUTH_REQUIRED", f"cannot read --token-file {path}: {exc.strerror}"
            ) from exc
    return os.environ.get(TOKEN_ENV, "").strip()


def cli_principal(options: dict[str, Any], *, capability: str | None = None) -> Principal:
    """The principal whose API token the command was given, holding `capability` when one is named.

    Refuses with AUTH_REQUIRED (no token), AUTH_INVALID_TOKEN (unknown, expired or revoked, or its
    principal disabled) or CAPABILITY_MISSING, before anything is written.
    """
    secret = _token_secret(options)
    if not secret:
        raise ControlPlaneError("AUTH_REQUIRED", f"set {TOKEN_ENV} or pass --token-file with an API token")
    token = services.token_authenticate(secret=secret)
    if token is None:
        raise ControlPlaneError("AUTH_INVALID_TOKEN")
    principal = token.principal
    if capability is not None and not principal.has_capability(capability):
        raise ControlPlaneError("CAPABILITY_MISSING", f"{principal.ref} lacks {capability!r}")
    return principal
