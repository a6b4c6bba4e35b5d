"""The OpenAPI schema covers every endpoint: each URL pattern under /api/v1/ is a path of /api/schema/,
so the fuzzer (tests/project/test_fuzz.py), which walks the schema, reaches every endpoint."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _api_routes(patterns, prefix: str = "") -> set[str]:
    routes: set[str] = set()
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes |= _api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.lstrip("^").startswith("api/v1/"):
            if "(?P<format>" in route:
                continue  # DRF's `.json` suffix twins of the same endpoint
            path = _CONVERTER.sub(r"{\1}", _NAMED_GROUP.sub(r"{\1}", route.replace("^", "").replace("$", "")))
            routes.add("/" + path.replace("{pk}", "{id}"))
    return routes


def test_every_api_url_pattern_is_in_the_schema():
    routes = _api_routes(get_resolver().url_patterns)
    documented = set(SchemaGenerator().get_schema(request=None, public=True)["paths"])
    assert len(routes) > 40
    assert routes - documented == set()
    assert {p for p in documented if p.startswith("/api/v1/")} - routes == set()


def test_every_operation_documents_the_error_body():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    codes = schema["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert {"VALIDATION_FAILED", "NOT_FOUND", "PAYLOAD_TOO_LARGE", "MALFORMED_JSON"} <= set(codes)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "403", "404", "429", "500"):
                assert status in operation["responses"], (method, path, status)
            if "requestBody" in operation:
                assert {"413", "415"} <= set(operation["responses"]), (method, path)


def test_server_side_constraints_are_in_the_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    trace = schema["paths"]["/api/v1/traces/{trace_id}/"]["get"]["parameters"]
    assert [p["schema"] for p in trace if p["name"] == "trace_id"] == [
        {"type": "string", "minLength": 32, "maxLength": 32, "pattern": "^0*[1-9a-f][0-9a-f]*$"}
    ]
    intents = schema["paths"]["/api/v1/intents/"]["post"]["parameters"]
    key = next(p for p in intents if p["name"] == "Idempotency-Key")
    assert (key["required"], key["schema"]["minLength"], key["schema"]["maxLength"]) == (True, 1, 255)
    rule = schema["components"]["schemas"]["RuleWriteRequest"]["properties"]
    assert (rule["threshold"]["minimum"], rule["threshold"]["maximum"]) == (1, 10_000)
    assert (rule["precision_bp"]["minimum"], rule["precision_bp"]["maximum"]) == (0, 10_000)
    switch = schema["components"]["schemas"]["KillSwitchRequest"]
    assert "engaged" in switch["required"]
    limit = next(
        p for p in schema["paths"]["/api/v1/approvals/"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
