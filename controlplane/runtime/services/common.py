"""Small helpers the runtime's service modules share."""

from __future__ import annotations

import hashlib
from datetime import datetime


def sha256_text(text: str) -> str:
    """The hex SHA-256 of a text (ids of intents and executions are content hashes)."""
    return hashlib.sha256(text.encode()).hexdigest()


def iso(moment: datetime) -> str:
    """A time as the worker writes it into a step's attempt log."""
    return moment.isoformat().replace("+00:00", "Z")
