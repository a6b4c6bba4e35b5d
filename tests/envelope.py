"""Tests' view of the telemetry envelope: check an answer's `meta`, then compare the rest of its body."""

from __future__ import annotations

from typing import Any

from controlplane.kernel.telemetry import envelope_errors


def _rest(data: Any) -> Any:
    """A parsed answer without its `meta`, after asserting that `meta` is a valid envelope."""
    assert isinstance(data, dict) and "meta" in data, f"answer without meta: {data!r}"
    assert envelope_errors(data["meta"]) == [], envelope_errors(data["meta"])
    return {key: value for key, value in data.items() if key != "meta"}


def body(response: Any) -> Any:
    """The JSON body of an API answer without its `meta`, after asserting that `meta` is a valid
    envelope (docs/telemetry.md). A bare list comes back as the list it was."""
    rest = _rest(response.json())
    return rest["results"] if set(rest) == {"results"} else rest


def without_meta(answer: Any) -> Any:
    """An answer (a response, or its parsed JSON) without its valid `meta`, lists left wrapped."""
    return _rest(answer.json() if hasattr(answer, "json") else answer)
