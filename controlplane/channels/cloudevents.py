"""CloudEvents 1.0 structured-mode JSON: parse and check one event, refusing with MALFORMED_EVENT.

Attributes are checked on the raw parsed body, as sent: a missing required attribute is refused with
its name, never filled in. The parsed result keeps every original attribute so nothing is lost.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from controlplane.kernel.errors import ControlPlaneError

MEDIA_TYPES = ("application/cloudevents+json", "application/json")
REQUIRED = ("id", "source", "specversion", "type")
RESERVED_TYPE_PREFIX = "controlplane."
# Lengths the ledger can hold: `ingest:<producer>:<id>` is the idempotency key, the rest are columns.
MAX_LENGTHS = {"id": 200, "type": 200, "source": 255, "subject": 255}
# Context attributes the spec defines besides the required ones, and their JSON types.
OPTIONAL_STRINGS = ("datacontenttype", "dataschema", "subject", "time")
_EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)


def _malformed(detail: str) -> ControlPlaneError:
    return ControlPlaneError("MALFORMED_EVENT", detail)


@dataclass(frozen=True)
class CloudEvent:
    """A checked event. `attributes` holds every top-level member as sent except `data`."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime | None
    attributes: dict[str, Any]
    has_data: bool  # whether the event has a `data` member (`data_base64` stays in `attributes`)
    data: Any


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (sub-microsecond digits are truncated)."""
    if not _RFC3339.match(value):
        raise _malformed(f"time {value!r} is not an RFC 3339 timestamp")
    normalised = value.upper()
    date_part, _, rest = normalised.partition("T")
    if "." in rest:
        clock, _, fraction_and_zone = rest.partition(".")
        digits = re.match(r"\d+", fraction_and_zone).group(0)
        rest = f"{clock}.{digits[:6].ljust(6, '0')}{fraction_and_zone[len(digits) :]}"
    try:
        return datetime.fromisoformat(f"{date_part}T{rest}")
    except ValueError as exc:
        raise _malformed(f"time {value!r} is not a valid RFC 3339 timestamp: {exc}") from exc


def _required_string(raw: dict[str, Any], name: str) -> str:
    if name not in raw or raw[name] is None:
        raise _malformed(f"required attribute {name!r} is missing")
    value = raw[name]
    if not isinstance(value, str) or not value:
        raise _malformed(f"attribute {name!r} must be a non-empty string")
    return value


def _check_extension(name: str, value: Any) -> None:
    if not _EXTENSION_NAME.match(name):
        raise _malformed(f"attribute name {name!r} is not lower-case letters and digits")
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):  # bool is handled above; the spec's Integer is 32-bit signed
        if not -(2**31) <= value < 2**31:
            raise _malformed(f"extension attribute {name!r} is outside the 32-bit integer range")
        return
    raise _malformed(f"extension attribute {name!r} must be a string, an integer or a boolean")


# Batched content mode (CloudEvents JSON format, section 4): a JSON array of structured events.
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
MAX_BATCH = 1000


def parse(body: bytes) -> CloudEvent:
    """Parse one structured-mode CloudEvent from raw JSON bytes, or raise MALFORMED_EVENT /
    EVENT_TYPE_RESERVED."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _malformed(f"the body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise _malformed(f"the body must be one JSON object (a batch is sent as {BATCH_MEDIA_TYPE})")
    return parse_object(raw)


def parse_batch(body: bytes) -> list[Any]:
    """The events of a batched delivery: a JSON array of 1 to MAX_BATCH items (each parsed on its own by
    `parse_object`), or MALFORMED_EVENT for the whole batch."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _malformed(f"the body is not JSON: {exc}") from exc
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BATCH:
        raise _malformed(f"a batch is a JSON array of 1 to {MAX_BATCH} CloudEvents")
    return raw


def parse_object(raw: Any) -> CloudEvent:
    """One structured-mode CloudEvent from its parsed JSON object (MALFORMED_EVENT, EVENT_TYPE_RESERVED)."""
    if not isinstance(raw, dict):
        raise _malformed("an event must be a JSON object")
    values = {name: _required_string(raw, name) for name in REQUIRED}
    if values["specversion"] != "1.0":
        raise _malformed(f"specversion must be '1.0', not {values['specversion']!r}")
    for name in OPTIONAL_STRINGS:
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise _malformed(f"attribute {name!r} must be a non-empty string when present")
    subject = raw.get("subject") or ""
    lengths = {**{name: len(value) for name, value in values.items()}, "subject": len(subject)}
    for name, limit in MAX_LENGTHS.items():
        if lengths[name] > limit:
            raise _malformed(f"attribute {name!r} is longer than {limit} characters")
    if "data" in raw and "data_base64" in raw:
        raise _malformed("an event carries data or data_base64, not both")
    if "data_base64" in raw:
        encoded = raw["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise TypeError
            base64.b64decode(encoded.encode("ascii"), validate=True)
        except (TypeError, binascii.Error, UnicodeEncodeError) as exc:
            raise _malformed("data_base64 must be a base64 string") from exc
    for name, value in raw.items():
        if name not in REQUIRED and name not in OPTIONAL_STRINGS and name not in ("data", "data_base64"):
            _check_extension(name, value)
    event_type = values["type"]
    if event_type.lower().startswith(RESERVED_TYPE_PREFIX):
        raise ControlPlaneError(
            "EVENT_TYPE_RESERVED", f"type {event_type!r} is reserved for the control plane's own events"
        )
    time_text = raw.get("time")
    return CloudEvent(
        id=values["id"],
        source=values["source"],
        type=event_type,
        subject=subject,
        time=parse_time(time_text) if time_text is not None else None,
        attributes={k: v for k, v in raw.items() if k != "data"},
        has_data="data" in raw,
        data=raw.get("data"),
    )
