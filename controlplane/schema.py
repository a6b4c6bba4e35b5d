"""OpenAPI postprocessing: every operation documents its error answers and their one body.

The body of every refusal is the `Error` component `{detail, code, request_id}` (plus `errors` for a
validation failure, and the refusal's own extra fields); `code` is an enum of the reason-code catalogue,
so a client (and the fuzzer in tests/project/test_fuzz.py) can check that every 4xx names a known code.
"""

from __future__ import annotations

from typing import Any

from controlplane.kernel.reasons import CATALOGUE
from controlplane.kernel.telemetry import ENVELOPE_VERSION, FIDELITY_LEVELS

# Answers any operation can give: its input refused, no or a bad credential, a missing capability, an
# object not found or not visible, a state conflict, a throttle, a crash, a dependency down.
_ALWAYS = {
    "400": "The parameters or body are invalid (VALIDATION_FAILED or the operation's own code).",
    "401": "No credentials, or a bad one (AUTH_REQUIRED, AUTH_INVALID_TOKEN).",
    "403": "The principal lacks the capability, or the rules refuse the act.",
    "404": "The object does not exist or is not visible to this principal.",
    "406": "The client does not accept application/json (NOT_ACCEPTABLE).",
    "409": "The object's state does not allow it.",
    "429": "Too many requests or failed authentications (RATE_LIMITED, AUTH_THROTTLED).",
    "500": "The server failed (INTERNAL_ERROR); the request id names it in the logs.",
    "503": "A dependency (broker, database, kill switch) holds the request.",
}
# Answers of operations that take a body.
_WITH_BODY = {
    "413": "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE (PAYLOAD_TOO_LARGE).",
    "415": "The body is not application/json (UNSUPPORTED_MEDIA_TYPE).",
}
_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _error_component() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Every refusal: a human detail, a catalogue reason code and the request id.",
        "properties": {
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": sorted(CATALOGUE)},
            "request_id": {"type": "string", "nullable": True},
            "errors": {"description": "VALIDATION_FAILED: the fields at fault and why."},
        },
        "required": ["detail", "code", "request_id"],
    }


# DRF's CharField refuses U+0000 and strips whitespace (Python's str.strip) before its blank check, so a
# string of only whitespace is refused too. Written out so that Python's and ECMA's regex read it alike.
_NO_NUL = r"^[^\x00]*$"
_NO_NUL_NOT_BLANK = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"


def _document_string_rules(node: Any) -> None:
    """Every plain string of a request body says what DRF's CharField refuses."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "enum", "format"} & node.keys():
            node["pattern"] = _NO_NUL_NOT_BLANK if node.get("minLength", 0) >= 1 else _NO_NUL
        for child in node.values():
            _document_string_rules(child)
    elif isinstance(node, list):
        for child in node:
            _document_string_rules(child)


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: add the `Error` component and every missing error answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = _error_component()
    for name, component in result["components"]["schemas"].items():
        if name.endswith("Request"):
            _document_string_rules(component)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            answers = {**_ALWAYS, **(_WITH_BODY if "requestBody" in operation else {})}
            for status, description in answers.items():
                responses.setdefault(status, {"description": description, "content": error})
    return result


# --- the telemetry envelope (docs/telemetry.md) ---------------------------------------------------------


_META_REQUIRED = ("envelope", "fidelity", "fallback", "reason_codes", "contract", "trace_id", "request_id")


def _meta_component() -> dict[str, Any]:
    """`TelemetryMeta`: the envelope's JSON Schema (controlplane/kernel/schemas/) in OpenAPI 3.0's words."""
    code = {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}
    return {
        "type": "object",
        "description": "The telemetry envelope every answer carries (controlplane.telemetry/v1).",
        "required": [*_META_REQUIRED],
        "properties": {
            "envelope": {"type": "string", "enum": [ENVELOPE_VERSION]},
            "fidelity": {"type": "string", "enum": list(FIDELITY_LEVELS)},
            "fallback": {
                "type": "object",
                "nullable": True,
                "required": ["used", "from", "to", "reason_code"],
                "properties": {
                    "used": {"type": "boolean"},
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "reason_code": code,
                },
            },
            "reason_codes": {"type": "array", "items": code},
            "contract": {"type": "string", "nullable": True},
            "trace_id": {"type": "string", "pattern": "^([0-9a-f]{32})?$"},
            "request_id": {"type": "string", "nullable": True},
            "translator": {"type": "string"},
            "warnings": {"type": "array", "items": code},
        },
    }


_META = {"meta": {"$ref": "#/components/schemas/TelemetryMeta"}}


def document_telemetry_envelope(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: every JSON answer requires `meta` (the renderer adds it), and a
    bare list is documented as the `{results, meta}` object it is served as."""
    result.setdefault("components", {}).setdefault("schemas", {})["TelemetryMeta"] = _meta_component()
    done: set[int] = set()  # answers share content objects (the error answers): wrap each once
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            for answer in operation.get("responses", {}).values():
                content = answer.get("content", {}).get("application/json")
                if not content or "schema" not in content or id(content) in done:
                    continue
                done.add(id(content))
                body = content["schema"]
                if body.get("type") == "array":
                    content["schema"] = {
                        "type": "object",
                        "required": ["results", "meta"],
                        "properties": {"results": body, "meta": dict(_META["meta"])},
                    }
                else:
                    content["schema"] = {
                        "allOf": [
                            body,
                            {
                                "type": "object",
                                "required": ["meta"],
                                "properties": {"meta": dict(_META["meta"])},
                            },
                        ]
                    }
    return result
