"""Who runs a shell-privileged installation command: the ledger actor `cli:<os user>@<host>`.

Installation commands (migrate, keys, witness, principals, producers, runners, demo, quickstart_admin)
need no API token: whoever can run `manage.py` on the host owns the installation. The events they append
still say who did it and where.
"""

from __future__ import annotations

import getpass
import os
import socket


def cli_actor() -> str:
    """`cli:<os user>@<host>` for the process running the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}@{socket.gethostname()}"
