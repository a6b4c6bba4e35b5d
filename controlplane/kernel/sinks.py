"""Signal sinks: how an app that may not import the incident pipeline still raises a signal into it.

The domain apps of one layer (`incidents | plugins | learning`) never import each other. A plugin that
crash-loops must still become evidence in the incident pipeline, deduplicated by its crash signature. So
the kernel holds this small registry: the incidents app registers a sink from its `AppConfig.ready()`, and
the plugins app calls `signal_raise(...)`, knowing no app by name. Callers raise after their own
transaction commits (`transaction.on_commit`): the incident pipeline takes its detection locks before the
ledger's chain lock, so raising from inside a transaction that already appended would invert that order.
A sink deduplicates by fingerprint, so raising the same signal twice is harmless. With no sink registered
(a build without incidents) nothing is raised and `signal_raise` returns 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RaisedSignal:
    """A signal in the incident pipeline's terms: `fingerprint` is what deduplicates it."""

    tenant: str  # a tenant slug
    source: str  # e.g. "plugins"
    service: str
    name: str
    severity: str  # critical | high | medium | low | info
    fingerprint: str
    summary: str
    at: datetime
    labels: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


Sink = Callable[[RaisedSignal], None]
_SINKS: dict[str, Sink] = {}


def register_signal_sink(name: str, sink: Sink) -> None:
    """Offer a sink for raised signals. Registering a name twice with another sink is a bug."""
    existing = _SINKS.get(name)
    if existing is not None and existing is not sink:
        raise ValueError(f"signal sink {name!r} is already registered")
    _SINKS[name] = sink


def signal_sinks() -> list[str]:
    return sorted(_SINKS)


def signal_raise(signal: RaisedSignal) -> int:
    """Hand the signal to every registered sink (inside the caller's transaction); how many took it."""
    for name in sorted(_SINKS):
        _SINKS[name](signal)
    return len(_SINKS)
