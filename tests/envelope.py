"""Every API answer carries the telemetry envelope as `meta` (docs/telemetry.md); tests that compare a whole
body compare what is left without it (tests/project/test_telemetry_envelope.py checks the envelope)."""

from __future__ import annotations

from typing import Any


def without_meta(answer: Any) -> Any:
    """The JSON body of a response (or an already parsed body), without its `meta`."""
    data = answer.json() if hasattr(answer, "json") else answer
    if isinstance(data, dict):
        return {key: value for key, value in data.items() if key != "meta"}
    return data
