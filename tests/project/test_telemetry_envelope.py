"""The telemetry envelope contract: every operation of the OpenAPI schema, exercised by the test client,
answers with a `meta` that validates against the shipped envelope schema (docs/telemetry.md).

The operations come from the schema, so an endpoint added later is exercised here without anyone listing
it; an answer without a valid `meta` fails the suite.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from controlplane.identity.capabilities import CAPABILITIES
from controlplane.kernel import telemetry
from controlplane.kernel.telemetry import envelope_errors
from controlplane.ledger.models import Fidelity
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

_METHODS = ("get", "post", "put", "patch", "delete")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]


def _concrete(path: str) -> str:
    """A path with every parameter filled in with a value that names nothing (answers are 404s, 400s)."""
    return re.sub(r"\{[^}]+\}", "0", path)


def envelope_problems(response: Any) -> list[str]:
    """Why an answer breaks the envelope contract ([] when it keeps it)."""
    if response.status_code == 204 or not response.content:
        return []
    if response.get("Content-Type", "").split(";")[0] != "application/json":
        return []
    body = response.json()
    if not isinstance(body, dict) or "meta" not in body:
        return ["no meta object"]
    return [f"meta{pointer}: {message}" for pointer, message in envelope_errors(body["meta"])]


@pytest.fixture
def bearer() -> str:
    principal = PrincipalFactory(tenant=TenantFactory(), human=True, capabilities=sorted(CAPABILITIES))
    return token_for(principal)


def test_every_operation_answers_with_a_valid_envelope(client, bearer):
    headers = {"Authorization": f"Bearer {bearer}"}
    failures, exercised = [], 0
    for method, path, _operation in _operations():
        call = getattr(client, method)
        kwargs: dict[str, Any] = {"headers": headers}
        if method in ("post", "put", "patch"):
            kwargs.update(data={}, content_type="application/json")
        response = call(_concrete(path), **kwargs)
        exercised += 1
        failures += [
            f"{method.upper()} {path} -> {response.status_code}: {p}" for p in envelope_problems(response)
        ]
    assert exercised >= 60  # the whole API, not a handful
    assert not failures, "\n".join(failures)


def test_anonymous_refusals_and_unknown_paths_carry_the_envelope(client):
    refused = client.get("/api/v1/intents/")
    unknown = client.get("/api/v1/no-such-thing/")
    assert refused.status_code == 401 and envelope_problems(refused) == []
    assert refused.json()["meta"]["reason_codes"] == ["AUTH_REQUIRED"]
    assert unknown.status_code == 404 and envelope_problems(unknown) == []
    assert unknown.json()["meta"]["reason_codes"] == ["NOT_FOUND"]


def test_the_request_id_and_trace_of_the_request_are_in_meta(client, bearer):
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = client.get(
        "/api/v1/approvals/",
        headers={
            "Authorization": f"Bearer {bearer}",
            "X-Request-ID": "req-meta-1",
            "traceparent": traceparent,
        },
    )
    meta = response.json()["meta"]
    assert response.status_code == 200 and envelope_problems(response) == []
    assert meta["request_id"] == "req-meta-1" and meta["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert meta["fidelity"] == "live" and meta["fallback"] is None and meta["reason_codes"] == []


def test_a_list_page_carries_meta_beside_its_counts(client, bearer):
    response = client.get("/api/v1/approvals/", headers={"Authorization": f"Bearer {bearer}"})
    assert set(response.json()) == {"count", "next", "previous", "results", "meta"}


def test_a_bare_list_is_served_as_results_with_meta(client, bearer):
    response = client.get("/api/v1/killswitch/", headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 200 and set(response.json()) == {"results", "meta"}
    assert isinstance(response.json()["results"], list)


def test_an_answer_without_meta_breaks_the_contract():
    class Answer:
        status_code = 200
        content = b'{"ok": true}'

        def get(self, name: str, default: str = "") -> str:
            return "application/json"

        def json(self) -> dict:
            return {"ok": True}

    assert envelope_problems(Answer()) == ["no meta object"]


def test_the_schema_documents_meta_on_every_json_answer():
    missing = []
    for method, path, operation in _operations():
        for status, answer in operation.get("responses", {}).items():
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                continue
            parts = schema.get("allOf", [schema])
            if not any("meta" in part.get("required", []) for part in parts):
                missing.append(f"{method.upper()} {path} {status}")
    assert not missing, missing


def test_the_ledger_speaks_the_envelope_vocabulary():
    assert tuple(Fidelity.values) == telemetry.FIDELITY_LEVELS
    assert telemetry.envelope_schema()["$defs"]["fidelity"]["enum"] == list(telemetry.FIDELITY_LEVELS)


def test_ledger_pages_holding_demo_data_say_demo(client):
    from controlplane.ledger.services import ledger_append

    tenant = TenantFactory(slug="acme")
    reader = PrincipalFactory(tenant=tenant, capabilities=["ledger.read"])
    headers = {"Authorization": f"Bearer {token_for(reader)}"}
    ledger_append(type="demo.thing", subject="d/1", data={}, tenant="acme", fidelity="live")
    demo = ledger_append(type="demo.thing", subject="d/2", data={}, tenant="acme", fidelity="demo")
    page = client.get("/api/v1/ledger/events/?type=demo.thing", headers=headers).json()
    one = client.get(f"/api/v1/ledger/events/{demo.seq}/", headers=headers).json()
    assert page["meta"]["fidelity"] == "demo" and one["meta"]["fidelity"] == "demo"
    live_only = client.get(
        "/api/v1/ledger/events/?type=demo.thing&seq_to=" + str(demo.seq - 1), headers=headers
    )
    assert live_only.json()["meta"]["fidelity"] == "live"
