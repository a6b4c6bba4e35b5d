"""The canonical telemetry envelope: one vocabulary for fidelity, fallback, reason codes, contract and trace.

The envelope is a versioned JSON Schema shipped beside this module (`schemas/telemetry-envelope.v1.json`,
documented in docs/telemetry.md). Three places speak it:

- every JSON answer of the API carries it as `meta` (the project's renderer and envelope middleware call
  `response_meta`; a view says what it served with `telemetry_mark`, a route that can only serve non-live
  data declares it once with `declare_fidelity`);
- every ledger event's `fidelity` and `reason_codes` take the same values (`FIDELITY_LEVELS`, catalogue
  codes; `governance validate` checks both);
- telemetry that agents, runners, plugins and signal sources send in their own dialects is mapped in by
  the translators registered here (`telemetry_translate`), which say which of them ran. A field no
  translator knows is refused with TELEMETRY_NONCANONICAL in enforce mode and dropped with a counted
  warning in warn mode (`controlplane.kernel.governance.gate`).

Model-free and pure apart from the request's context variables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from controlplane.kernel.context import parse_traceparent, request_id_var, traceparent_var
from controlplane.kernel.reasons import CATALOGUE

ENVELOPE_VERSION = "controlplane.telemetry/v1"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "telemetry-envelope.v1.json"

LIVE, DEGRADED, DEMO, SIMULATED = "live", "degraded", "demo", "simulated"
FIDELITY_LEVELS = (LIVE, DEGRADED, DEMO, SIMULATED)
# The envelope's own top-level names: a received payload made only of these needs no translator.
CANONICAL_FIELDS = frozenset(
    {"fidelity", "fallback", "reason_codes", "contract", "trace_id", "request_id", "genai"}
)


@cache
def envelope_schema() -> dict[str, Any]:
    """The shipped JSON Schema of the envelope (read once)."""
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(envelope_schema())


def envelope_errors(meta: Any) -> list[tuple[str, str]]:
    """Every schema error of a `meta` object as (JSON pointer, message); empty when it validates."""
    return sorted(
        ("/" + "/".join(str(part) for part in error.absolute_path), error.message)
        for error in _validator().iter_errors(meta)
    )


def fallback(*, source: str, target: str, reason_code: str) -> dict[str, Any]:
    """A `fallback` object: served from `target` instead of `source`, because of `reason_code`."""
    if reason_code not in CATALOGUE:
        raise ValueError(f"fallback reason {reason_code!r} is not in the reason-code catalogue")
    return {"used": True, "from": source, "to": target, "reason_code": reason_code}


# --- declared non-live paths ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FidelityDeclaration:
    """A route (its URL name, as `reverse` knows it) that serves non-live data, and why."""

    route: str
    fidelity: str
    reason_code: str
    why: str
    fallback_from: str = ""  # set when the route is a fallback path: what it stands in for


FIDELITY_DECLARATIONS: dict[str, FidelityDeclaration] = {}


def declare_fidelity(
    route: str, *, fidelity: str, reason_code: str, why: str, fallback_from: str = ""
) -> FidelityDeclaration:
    """Declare, from an app's `ready()`, that a route serves `fidelity` data: its answers say so in `meta`
    without the view having to, and `governance validate` checks the declaration (a catalogue reason, a
    route that exists)."""
    if fidelity not in FIDELITY_LEVELS or fidelity == LIVE:
        raise ValueError(f"declare_fidelity({route!r}): fidelity must be one of {FIDELITY_LEVELS[1:]}")
    declaration = FidelityDeclaration(route, fidelity, reason_code, why, fallback_from)
    existing = FIDELITY_DECLARATIONS.get(route)
    if existing is not None and existing != declaration:
        raise ValueError(f"fidelity of route {route!r} is already declared differently")
    FIDELITY_DECLARATIONS[route] = declaration
    return declaration


# --- what a response says about itself -------------------------------------------------------------------

_marked: ContextVar[dict[str, Any] | None] = ContextVar("telemetry_marked", default=None)


def telemetry_mark(
    *,
    fidelity: str | None = None,
    fallback: Mapping[str, Any] | None = None,
    reason_codes: Iterable[str] = (),
    contract: str | None = None,
) -> None:
    """Say, from inside a view or a service it calls, what this request's answer is made of: a cache past
    its freshness is `degraded` with a `fallback`, a simulation is `simulated`. The answer's `meta` carries
    it; the lowest fidelity marked wins."""
    if fidelity is not None and fidelity not in FIDELITY_LEVELS:
        raise ValueError(f"unknown fidelity {fidelity!r}")
    current = dict(_marked.get() or {})
    if fidelity is not None:
        current["fidelity"] = _lower(current.get("fidelity", LIVE), fidelity)
    if fallback is not None:
        current["fallback"] = dict(fallback)
    if reason_codes:
        current["reason_codes"] = [*current.get("reason_codes", []), *reason_codes]
    if contract is not None:
        current["contract"] = contract
    _marked.set(current)


def telemetry_reset() -> None:
    """Forget what this context marked (the middleware calls it when a request starts)."""
    _marked.set(None)


# Lower is worse: the fidelity an answer carries is the lowest of what it was made of.
_RANK = {LIVE: 3, DEGRADED: 2, SIMULATED: 1, DEMO: 0}


def _lower(left: str, right: str) -> str:
    return left if _RANK[left] <= _RANK[right] else right


def response_meta(*, route: str | None, body: Any) -> dict[str, Any]:
    """The `meta` object of one answer: the route's declared fidelity, what the view marked, the refusal's
    code when the body is an error, and the request's ids."""
    marked = _marked.get() or {}
    declared = FIDELITY_DECLARATIONS.get(route or "")
    fidelity = LIVE
    fallback_value: dict[str, Any] | None = None
    reason_codes: list[str] = []
    if declared is not None:
        fidelity = declared.fidelity
        reason_codes.append(declared.reason_code)
        if declared.fallback_from:
            fallback_value = {
                "used": True,
                "from": declared.fallback_from,
                "to": declared.route,
                "reason_code": declared.reason_code,
            }
    if "fidelity" in marked:
        fidelity = _lower(fidelity, marked["fidelity"])
    fallback_value = marked.get("fallback", fallback_value)
    if fallback_value is not None and fallback_value.get("reason_code"):
        reason_codes.append(fallback_value["reason_code"])
    reason_codes += marked.get("reason_codes", [])
    if isinstance(body, Mapping) and isinstance(body.get("code"), str) and body["code"] in CATALOGUE:
        reason_codes.append(body["code"])
    parsed = parse_traceparent(traceparent_var.get())
    return {
        "envelope": ENVELOPE_VERSION,
        "fidelity": fidelity,
        "fallback": fallback_value,
        "reason_codes": list(dict.fromkeys(reason_codes)),
        "contract": marked.get("contract"),
        "trace_id": parsed[0] if parsed else "",
        "request_id": request_id_var.get(),
    }


def with_meta(body: Any, meta: dict[str, Any]) -> Any:
    """The body carrying `meta`: added to an object, and a bare list becomes `{"results": [...], "meta"}`
    (the shape of a page without its counts). `None` (204) stays empty."""
    if body is None:
        return None
    if isinstance(body, list):
        return {"results": body, "meta": meta}
    if isinstance(body, dict):
        return {**body, "meta": meta}
    return body


# --- translators: dialects in, the envelope out -----------------------------------------------------------


@dataclass(frozen=True)
class Translator:
    """Maps the fields one dialect uses (`claims`) into envelope fields. `translate` gets the claimed
    fields present in a payload and returns envelope fields (a partial envelope)."""

    name: str
    description: str
    claims: frozenset[str]
    translate: Callable[[dict[str, Any]], dict[str, Any]]


TRANSLATORS: dict[str, Translator] = {}


def register_translator(translator: Translator) -> None:
    """Register a dialect (from an app's `ready()`: a plugin family, a runner, a signal source)."""
    existing = TRANSLATORS.get(translator.name)
    if existing is not None and existing != translator:
        raise ValueError(f"translator {translator.name!r} is already registered")
    for other in TRANSLATORS.values():
        if other.name != translator.name and other.claims & translator.claims:
            raise ValueError(f"translator {translator.name!r} claims fields {other.name!r} already claims")
    TRANSLATORS[translator.name] = translator


@dataclass
class Translation:
    """What `telemetry_translate` made of a payload."""

    envelope: dict[str, Any]
    translators: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # top-level fields no translator claims

    @property
    def translator(self) -> str:
        return "+".join(self.translators) or "canonical"


def telemetry_translate(payload: Mapping[str, Any]) -> Translation:
    """Map a received telemetry object into envelope fields. Canonical fields pass as they are; each field a
    translator claims goes through it; any other field is listed in `unknown` (the caller gates it)."""
    envelope: dict[str, Any] = {}
    used: list[str] = []
    unknown: list[str] = []
    claimed: dict[str, dict[str, Any]] = {}
    for key, value in payload.items():
        if key in CANONICAL_FIELDS:
            envelope[key] = value
            continue
        translator = next((t for t in TRANSLATORS.values() if key in t.claims), None)
        if translator is None:
            unknown.append(key)
        else:
            claimed.setdefault(translator.name, {})[key] = value
    for name, fields in claimed.items():
        for key, value in TRANSLATORS[name].translate(fields).items():
            if key == "genai" and isinstance(envelope.get("genai"), dict):
                envelope["genai"] = {**value, **envelope["genai"]}  # the canonical field wins
            else:
                envelope.setdefault(key, value)
        used.append(name)
    return Translation(envelope=envelope, translators=sorted(used), unknown=sorted(unknown))


_FIDELITY_WORDS = {
    "live": LIVE,
    "full": LIVE,
    "high": LIVE,
    "degraded": DEGRADED,
    "partial": DEGRADED,
    "stale": DEGRADED,
    "low": DEGRADED,
    "demo": DEMO,
    "sample": DEMO,
    "simulated": SIMULATED,
    "simulation": SIMULATED,
    "dry-run": SIMULATED,
}


def _fidelity_word(value: Any) -> str:
    word = str(value).strip().lower()
    return _FIDELITY_WORDS.get(word, DEGRADED)  # a level we cannot read is not claimed as live


def _reason_word(value: Any) -> str:
    """A free-text fallback reason in the catalogue's spelling, or TELEMETRY_FALLBACK_UNSPECIFIED."""
    code = str(value or "").strip().upper().replace("-", "_").replace(" ", "_")
    return code if code in CATALOGUE else "TELEMETRY_FALLBACK_UNSPECIFIED"


def _camel_fallback(fields: dict[str, Any]) -> dict[str, Any]:
    if not fields.get("fallbackUsed"):
        return {"fallback": None}
    return {
        "fidelity": DEGRADED,
        "fallback": {
            "used": True,
            "from": str(fields.get("fallbackFrom") or "primary"),
            "to": str(fields.get("fallbackTo") or "fallback"),
            "reason_code": _reason_word(fields.get("fallbackReason")),
        },
    }


def _snake_fallback(fields: dict[str, Any]) -> dict[str, Any]:
    used = fields.get("fallback_used", bool(fields.get("fallback_reason")))
    if not used:
        return {"fallback": None}
    return {
        "fidelity": DEGRADED,
        "fallback": {
            "used": True,
            "from": str(fields.get("fallback_from") or "primary"),
            "to": str(fields.get("fallback_to") or "fallback"),
            "reason_code": _reason_word(fields.get("fallback_reason")),
        },
    }


def _otel_genai(fields: dict[str, Any]) -> dict[str, Any]:
    genai: dict[str, Any] = {}
    model = fields.get("gen_ai.response.model") or fields.get("gen_ai.request.model")
    if model:
        genai["model"] = str(model)
    if "gen_ai.system" in fields:
        genai["system"] = str(fields["gen_ai.system"])
    for source, target in (
        ("gen_ai.usage.input_tokens", "input_tokens"),
        ("gen_ai.usage.output_tokens", "output_tokens"),
    ):
        if source in fields:
            genai[target] = fields[source]
    return {"genai": genai}


# The dialects met so far (docs/telemetry.md, "Translators"); apps register more the same way.
for _translator in (
    Translator(
        "camel-fallback",
        "JavaScript agents: fallbackUsed, fallbackFrom, fallbackTo, fallbackReason",
        frozenset({"fallbackUsed", "fallbackFrom", "fallbackTo", "fallbackReason"}),
        _camel_fallback,
    ),
    Translator(
        "snake-fallback",
        "Python runners: fallback_used, fallback_from, fallback_to, fallback_reason",
        frozenset({"fallback_used", "fallback_from", "fallback_to", "fallback_reason"}),
        _snake_fallback,
    ),
    Translator(
        "fidelity-level",
        "plugins: fidelity_level (full | partial | stale | sample | dry-run ...)",
        frozenset({"fidelity_level"}),
        lambda fields: {"fidelity": _fidelity_word(fields["fidelity_level"])},
    ),
    Translator(
        "degraded-flag",
        "signal sources: degraded: true",
        frozenset({"degraded"}),
        lambda fields: {"fidelity": DEGRADED} if fields["degraded"] else {},
    ),
    Translator(
        "otel-genai",
        "OpenTelemetry GenAI semantic conventions: gen_ai.system, gen_ai.request.model, "
        "gen_ai.response.model, gen_ai.usage.input_tokens, gen_ai.usage.output_tokens",
        frozenset(
            {
                "gen_ai.system",
                "gen_ai.request.model",
                "gen_ai.response.model",
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.output_tokens",
            }
        ),
        _otel_genai,
    ),
):
    register_translator(_translator)
