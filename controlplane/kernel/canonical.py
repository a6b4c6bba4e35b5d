"""RFC 8785 (JSON Canonicalization Scheme) encoding for everything that is hashed or signed.

orjson with sorted keys emits exactly the RFC 8785 bytes for JSON holding no floats, only integers in
the IEEE-754 safe range and only object keys inside the Basic Multilingual Plane (RFC 8785 orders keys
by UTF-16 code units, Python by code points; they differ only above U+FFFF). Values outside that
domain take the `rfc8785` reference encoder. Property tests hold the two paths to the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785

from controlplane.kernel.errors import ControlPlaneError

MAX_SAFE_INTEGER = 2**53 - 1


def _fast_path_ok(value: Any) -> bool:
    """True when orjson's sorted output is already RFC 8785 for this value; raises on non-JSON types."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or item is True or item is False or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise ControlPlaneError("LEDGER_NOT_CANONICAL", f"integer {item} is outside the safe range")
            continue
        if isinstance(item, float):
            return False
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ControlPlaneError("LEDGER_NOT_CANONICAL", f"object key {key!r} is not a string")
                if not key.isascii() and any(ord(ch) > 0xFFFF for ch in key):
                    return False
                stack.append(child)
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        raise ControlPlaneError("LEDGER_NOT_CANONICAL", f"{type(item).__name__} is not a JSON value")
    return True


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _fast_path_ok(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:  # e.g. a lone surrogate in a string
            raise ControlPlaneError("LEDGER_NOT_CANONICAL", str(exc)) from exc
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ControlPlaneError("LEDGER_NOT_CANONICAL", str(exc)) from exc


def format_time(moment: datetime) -> str:
    """The one textual form of a time inside signed data: UTC, microseconds, `Z`."""
    if moment.tzinfo is None:
        raise ValueError("ledger times must be timezone-aware")
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    if moment.year >= 1000:  # the same bytes as below, several times faster (verification's hot path)
        return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"
