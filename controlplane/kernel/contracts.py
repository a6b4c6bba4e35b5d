"""Contracts: the control plane's commands, queries and events, each registered by the app that owns it.

Each contract has a name in the `controlPlane` namespace (`intent.submit`, `execution.get`,
`intent.received`), a kind, the app that owns it, a description, a JSON Schema (2020-12) and the surfaces
that implement it. For a command or a query the schema describes its input; for an event it describes the
ledger payload (`data`) of the event type `controlplane.<name>`. Every app declares its own in its
`contracts.py` and registers them from its `AppConfig.ready()` with `register_contracts`, naming the
ledger event families it covers (every event of those types must have a contract). `docs/contracts.md` is
generated from the registry (`manage.py contracts docs`) and a test fails when it is stale; another test
runs the whole action flow through the services and validates every event it wrote against its contract.

Event schemas close their objects (`additionalProperties: false`): a field an app starts writing must be
added to its contract first, or the test fails. Consumers should still ignore fields they do not know, as
CloudEvents consumers do: adding an optional field is a compatible change, removing or retyping one is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

NAMESPACE = "controlPlane"
LEDGER_PREFIX = "controlplane."

COMMAND, QUERY, EVENT = "command", "query", "event"
KINDS = (COMMAND, QUERY, EVENT)


@dataclass(frozen=True)
class Contract:
    """One command, query or event of the control plane."""

    name: str
    kind: str
    owner: str
    description: str
    schema: Mapping[str, Any]
    api: tuple[str, ...] = ()  # "POST /api/v1/intents/"
    service: str = ""  # the dotted path of the function that implements it
    cli: tuple[str, ...] = ()  # "manage.py approvals approve ID"
    capability: str = ""  # the capability a caller needs (events: to read them from the ledger API)

    @property
    def qualified_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"

    @property
    def ledger_type(self) -> str:
        """The ledger event type an event contract describes ('' for commands and queries)."""
        return LEDGER_PREFIX + self.name if self.kind == EVENT else ""

    def errors(self, instance: Any) -> list[str]:
        """Every schema error of `instance` (an input, or an event's `data`), as `path: message`."""
        validator = Draft202012Validator(dict(self.schema))
        return sorted(
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(instance)
        )


# --- schema building blocks shared by every app's contracts -----------------------------------------------

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
TRACE_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
PRINCIPAL_REF = {"type": "string", "pattern": "^[^/]+/.+$", "description": "`<tenant>/<principal name>`"}
CODES = {"type": "array", "items": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}}
TEXT = {"type": "string", "minLength": 1}
COUNT = {"type": "integer", "minimum": 0}
DATE_TIME = {"type": "string", "format": "date-time", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T.+Z$"}


def obj(required: Mapping[str, Any], optional: Mapping[str, Any] | None = None, **extra: Any) -> dict:
    """A closed object: the `required` properties, plus `optional` ones."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
        **extra,
    }


def schema(body: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, **body}


def event_contract(name: str, owner: str, description: str, body: dict[str, Any], service: str) -> Contract:
    """The contract of the ledger event type `controlplane.<name>`, read through the ledger API."""
    return Contract(
        name,
        EVENT,
        owner,
        description,
        schema(body),
        api=(f"GET /api/v1/ledger/events/?type=controlplane.{name}",),
        service=service,
        capability="ledger.read",
    )


# --- the registry ---------------------------------------------------------------------------------------


class Registry:
    """Every registered contract, in registration order, and the ledger event families they cover."""

    def __init__(self) -> None:
        self.contracts: list[Contract] = []
        self.covered_prefixes: list[str] = []

    def register(self, contracts: Iterable[Contract], *, covers: Iterable[str] = ()) -> None:
        for contract in contracts:
            existing = self.get(contract.name)
            if existing is not None:
                if existing == contract:
                    continue  # an app registered twice (a test re-running ready()): harmless
                raise ValueError(f"contract {contract.qualified_name} is already registered")
            if contract.kind not in KINDS:
                raise ValueError(f"contract {contract.name}: unknown kind {contract.kind!r}")
            self.contracts.append(contract)
        self.covered_prefixes += [prefix for prefix in covers if prefix not in self.covered_prefixes]

    def __iter__(self) -> Iterator[Contract]:
        return iter(self.contracts)

    def of_kind(self, kind: str) -> list[Contract]:
        return [c for c in self.contracts if c.kind == kind]

    def get(self, name: str) -> Contract | None:
        return next((c for c in self.contracts if c.name == name), None)

    def for_ledger_type(self, event_type: str) -> Contract | None:
        """The event contract of a ledger event type (`controlplane.intent.received`), if registered."""
        return next((c for c in self.contracts if c.kind == EVENT and c.ledger_type == event_type), None)

    def covers(self, event_type: str) -> bool:
        """Whether `event_type` belongs to a family some app declared it covers."""
        return event_type.startswith(tuple(self.covered_prefixes))


REGISTRY = Registry()


def register_contracts(contracts: Iterable[Contract], *, covers: Iterable[str] = ()) -> None:
    """Register an app's contracts, and the ledger event families (`controlplane.intent.`) it covers."""
    REGISTRY.register(contracts, covers=covers)
