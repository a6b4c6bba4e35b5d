"""The findings of the first outside fuzz run (issue 11, section 4), each pinned by a test.

Each test failed before its fix: a 500, an answer the schema does not promise, a refusal without a
reason code, or a malformed request accepted.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import path

from controlplane.ledger.models import LedgerEvent
from controlplane.runtime.models import KillSwitch
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db


def _auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def _token(*capabilities: str, human: bool = False) -> str:
    return token_for(PrincipalFactory(tenant=TenantFactory(), human=human, capabilities=list(capabilities)))


def _post(client, url: str, body, token: str, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", **_auth(token), **extra)


def test_killswitch_without_engaged_is_refused_not_a_server_error(client):
    token = _token("killswitch.manage")
    events = LedgerEvent.objects.count()
    response = _post(client, "/api/v1/killswitch/", {"scope": "global", "reason": "x"}, token)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert "engaged" in response.json()["errors"]
    assert not KillSwitch.objects.exists() and LedgerEvent.objects.count() == events


@pytest.mark.parametrize(
    "query",
    [
        "limit=9223372036854775808",
        "limit=99999999999999999999999",
        "limit=abc",
        "limit=-1",
        "limit=0",
        "limit=1.5",
        "limit=501",
        "offset=-5",
        "offset=abc",
        "offset=9223372036854775808",
    ],
)
def test_list_paging_out_of_range_or_not_an_integer_is_refused(client, query):
    token = _token("approvals.read", human=True)
    response = client.get(f"/api/v1/approvals/?{query}", **_auth(token))
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_FAILED"


def test_list_paging_within_range_is_served(client):
    token = _token("approvals.read", human=True)
    response = client.get("/api/v1/approvals/?limit=500&offset=0", **_auth(token))
    assert response.status_code == 200 and "results" in response.json()


@pytest.mark.parametrize("page_size", ["0", "501", "abc", "1.5", "99999999999999999999"])
def test_ledger_page_size_out_of_range_is_refused(client, page_size):
    response = client.get(f"/api/v1/ledger/events/?page_size={page_size}", **_auth(_token("ledger.read")))
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/signals/?suppressed=banana",
        "/api/v1/signals/?severity=apocalyptic",
        "/api/v1/incidents/?status=banana",
        "/api/v1/approvals/?status=banana",
        "/api/v1/silences/?status=banana",
    ],
)
def test_unknown_filter_values_are_refused_not_ignored(client, url):
    token = _token("incidents.read", "approvals.read", "silences.manage", human=True)
    response = client.get(url, **_auth(token))
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_FAILED"


def test_suppressed_filter_still_filters(client):
    token = _token("incidents.read")
    assert client.get("/api/v1/signals/?suppressed=true", **_auth(token)).status_code == 200
    assert client.get("/api/v1/signals/?suppressed=false", **_auth(token)).status_code == 200


def test_form_encoded_bodies_are_refused_with_a_code(client):
    """A form reads a blank field as "" where JSON says nothing: the API takes JSON only."""
    token = _token("platform.policy.manage", "policy.read")
    events = LedgerEvent.objects.count()
    response = client.post(
        "/api/v1/policy/profiles/1/activate/", {"reason": "go", "expected_hash": ""}, **_auth(token)
    )
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert LedgerEvent.objects.count() == events


def test_incident_timeline_is_the_array_the_schema_promises(client, tmp_path):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    timeline = schema["paths"]["/api/v1/incidents/{id}/timeline/"]["get"]
    body = timeline["responses"]["200"]["content"]["application/json"]["schema"]
    # the array, served as `{results, meta}` (the telemetry envelope on every answer, docs/telemetry.md)
    assert body["properties"]["results"]["type"] == "array" and "meta" in body["required"]
    assert {p["name"] for p in timeline.get("parameters", [])} == {"id"}  # no filters, no paging


def test_unmatched_api_paths_answer_json_404_with_a_code(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "NOT_FOUND"
    assert "request_id" in response.json()
    assert "urlpatterns" not in response.content.decode()


def test_unmatched_api_paths_answer_json_even_in_debug(client, settings):
    settings.DEBUG = True
    response = client.get("/api/v1/no-such-thing/")
    assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    assert "urlpatterns" not in response.content.decode()


def test_unmatched_console_paths_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def _crash(request):
    raise RuntimeError("boom")


# The project's own handlers, as controlplane.urls declares them, around a view that crashes.
from controlplane.urls import handler404, handler500  # noqa: E402, F401

urlpatterns = [path("api/v1/crash/", _crash)]


@override_settings(ROOT_URLCONF=__name__)
def test_api_crashes_answer_json_500_with_a_code(client):
    client.raise_request_exception = False
    response = client.get("/api/v1/crash/")
    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert response.json()["request_id"] == response["X-Request-ID"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("delete", "/api/v1/incidents/abc/"),
        ("put", "/api/v1/approvals/abc/"),
        ("post", "/api/v1/ledger/events/"),
        ("delete", "/api/v1/killswitch/"),
        ("patch", "/api/v1/signals/abc/"),
    ],
)
def test_unsupported_methods_answer_405_not_a_missing_capability(client, method, url):
    token = _token("incidents.read", "approvals.read", "ledger.read", "killswitch.manage")
    response = getattr(client, method)(url, **_auth(token))
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_unsupported_methods_still_need_credentials(client):
    response = client.delete("/api/v1/incidents/abc/")
    assert response.status_code == 401 and response.json()["code"] == "AUTH_REQUIRED"


def test_bulk_decide_item_without_its_id_is_invalid_not_missing(client):
    token = _token("approvals.read", "approvals.decide", human=True)
    events = LedgerEvent.objects.count()
    response = _post(
        client,
        "/api/v1/approvals/bulk-decide/",
        {"decision": "approve", "reason": "ok", "requests": [{"content_hash": "a" * 64}]},
        token,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert LedgerEvent.objects.count() == events


# --- oversized and deeply nested bodies -----------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("url", "capability"),
    [
        ("/api/v1/killswitch/", "killswitch.manage"),
        ("/api/v1/policy/explain/", "policy.read"),
        ("/api/v1/incidents/abc/acknowledge/", "incidents.manage"),
    ],
)
def test_oversized_api_bodies_are_refused_unread(client, settings, url, capability):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = _token(capability, human=True)
    events = LedgerEvent.objects.count()
    body = json.dumps({"reason": "x" * 2000})
    response = client.post(url, body, content_type="application/json", **_auth(token))
    assert (response.status_code, response.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert LedgerEvent.objects.count() == events


def test_a_lying_content_length_is_still_cut_at_the_limit():
    from io import BytesIO

    from controlplane.kernel.errors import ControlPlaneError
    from controlplane.parsers import read_bounded

    class Claims:
        META = {"CONTENT_LENGTH": "10"}

    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100):
        assert read_bounded(BytesIO(b"x" * 100), Claims()) == b"x" * 100
        with pytest.raises(ControlPlaneError) as refused:
            read_bounded(BytesIO(b"x" * 101), Claims())
    assert refused.value.code == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("depth", [33, 5000, 100_000])
def test_deeply_nested_api_bodies_are_refused_with_a_code(client, depth):
    token = _token("killswitch.manage")
    body = '{"scope": "global", "engaged": true, "reason": ' + _nested(depth) + "}"
    response = client.post("/api/v1/killswitch/", body, content_type="application/json", **_auth(token))
    assert (response.status_code, response.json()["code"]) == (400, "MALFORMED_JSON")
    assert not KillSwitch.objects.exists()


def test_nesting_up_to_the_limit_is_parsed(client, settings):
    settings.CONTROLPLANE_JSON_MAX_DEPTH = 3
    token = _token("killswitch.manage")
    ok = '{"scope": "global", "engaged": true, "reason": "r", "x": [[1]]}'
    deep = '{"scope": "global", "engaged": true, "reason": "r", "x": [[[1]]]}'
    url = "/api/v1/killswitch/"
    refused = client.post(url, deep, content_type="application/json", **_auth(token))
    assert refused.json()["code"] == "MALFORMED_JSON"
    parsed = client.post(url, ok, content_type="application/json", **_auth(token))
    assert parsed.status_code != 400 or parsed.json()["code"] != "MALFORMED_JSON"


@pytest.mark.parametrize("text", ['"\\u0000"', '"a\\ud800"', "NaN", "{not json"])
def test_bodies_postgresql_cannot_store_or_that_are_not_json_are_malformed(client, text):
    token = _token("killswitch.manage")
    body = '{"scope": "global", "engaged": true, "reason": ' + text + "}"
    response = client.post("/api/v1/killswitch/", body, content_type="application/json", **_auth(token))
    assert (response.status_code, response.json()["code"]) == (400, "MALFORMED_JSON")
    assert not KillSwitch.objects.exists()


@pytest.mark.parametrize(
    "url", ["/api/v1/signals/alertmanager/", "/api/v1/signals/grafana/", "/api/v1/signals/"]
)
def test_webhooks_refuse_oversized_and_deep_bodies_with_a_code(client, settings, url):
    token = _token("signals.ingest")
    events = LedgerEvent.objects.count()
    deep = client.post(url, _nested(100_000), content_type="application/json", **_auth(token))
    assert deep.status_code == 400 and deep.json()["code"] == "SIGNAL_INVALID"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = client.post(url, json.dumps({"pad": "x" * 2000}), content_type="application/json", **_auth(token))
    assert (big.status_code, big.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert LedgerEvent.objects.count() == events


def test_webhook_text_postgresql_cannot_store_is_refused_with_a_code(client):
    from tests.incidents.factories import am_alert, am_payload

    token = _token("signals.ingest")
    events = LedgerEvent.objects.count()
    body = json.dumps(am_payload(am_alert(extra_labels={"note": "a\x00b"})))
    response = client.post(
        "/api/v1/signals/alertmanager/", body, content_type="application/json", **_auth(token)
    )
    assert response.status_code == 400 and response.json()["code"] == "SIGNAL_INVALID"
    assert LedgerEvent.objects.count() == events
