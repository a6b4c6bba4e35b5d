"""What an action's manifest lets one step do: its blast radius (how many targets one step may name).

Pure functions of a contract and a step's inputs (no database, no clock): the runtime's compiler calls them,
and replay re-takes the same decision from the recorded contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def blast_radius_targets(blast_radius: Mapping[str, Any], inputs: Mapping[str, Any]) -> int:
    """How many targets a step's inputs name: the `target_input`'s items when it is a list, one for any
    other value, none when the action names no target input or the step leaves it out."""
    name = blast_radius.get("target_input")
    if not name or name not in inputs or inputs[name] is None:
        return 0
    value = inputs[name]
    return len(value) if isinstance(value, list) else 1


def blast_radius_exceeded(blast_radius: Mapping[str, Any] | None, inputs: Mapping[str, Any]) -> str | None:
    """Why a step names more targets than its action's blast radius allows, or None when it does not.

    A contract without a blast radius (recorded before actions carried one) is not limited here."""
    if not blast_radius or "max_targets" not in blast_radius:
        return None
    targets, limit = blast_radius_targets(blast_radius, inputs), int(blast_radius["max_targets"])
    if targets <= limit:
        return None
    name = blast_radius.get("target_input")
    return f"names {targets} targets in {name!r}; the action allows at most {limit}"


def _pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: the value at `pointer` ("" is the whole document); KeyError when it is not there."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise KeyError(pointer)
    value = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        elif isinstance(value, Mapping) and token in value:
            value = value[token]
        else:
            raise KeyError(pointer)
    return value


def compensating_inputs(
    mapping: Mapping[str, str], *, inputs: Mapping[str, Any], outcome: Mapping[str, Any]
) -> dict[str, Any]:
    """The compensating action's inputs from the undone step's: each mapped name takes the value a JSON
    pointer names in the step's inputs (`/...`) or its outcome (`#/...`). KeyError names a pointer that
    does not resolve."""
    built: dict[str, Any] = {}
    for name, pointer in mapping.items():
        if pointer.startswith("#"):
            built[name] = _pointer(outcome, pointer[1:])
        else:
            built[name] = _pointer(inputs, pointer)
    return built
