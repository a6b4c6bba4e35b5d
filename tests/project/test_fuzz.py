"""Schemathesis over the OpenAPI schema, in process (WSGI), with a service token and a human token.

Every operation of /api/schema/ gets a bounded number of generated requests (positive and negative):
no 5xx, every response conforms to the schema (so every 4xx body is the `Error` component and its
`code` is in the reason-code catalogue), every status is documented, a schema-valid request is not
refused as invalid and a schema-violating one is not accepted. The human token takes incident and
approval operations past their human-only checks. Exclusions are listed, each with its reason.
"""

from __future__ import annotations

import logging

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as openapi_checks

from controlplane.identity.capabilities import CAPABILITIES
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

# Bounded: ~47 operations x 2 principals x this many generated cases (plus the explicit examples).
MAX_EXAMPLES = 3

CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.positive_data_acceptance,
]

# Operation + check pairs that cannot pass, each for a reason the schema cannot state.
EXCLUDED = {
    # Cross-field: a global switch names no target, a tenant or action switch needs one (VALIDATION_FAILED).
    ("POST /api/v1/killswitch/", "positive_data_acceptance"),
    # `profile` names a profile by id: a schema-valid id of no profile is a 400 of the body.
    ("POST /api/v1/policy/explain/", "positive_data_acceptance"),
    # The senders' payloads (generic, Alertmanager v4, Grafana v1) go through the normaliser, whose rules
    # (time formats, payload versions, a resolved signal's end time) the schema states only in part; each
    # refusal is SIGNAL_INVALID naming the field at fault.
    ("POST /api/v1/signals/", "positive_data_acceptance"),
    ("POST /api/v1/signals/alertmanager/", "positive_data_acceptance"),
    ("POST /api/v1/signals/grafana/", "positive_data_acceptance"),
    # The plan draft is checked by the compiler (PLAN_* codes: step keys, dependencies, each action's own
    # input JSON Schema), a policy profile by its content schema and rules (POLICY_PROFILE_INVALID naming
    # the path), a silence's reason by the service (INCIDENT_REASON_REQUIRED): not by the request schema.
    ("POST /api/v1/intents/", "positive_data_acceptance"),
    ("POST /api/v1/policy/profiles/", "positive_data_acceptance"),
    ("POST /api/v1/silences/", "positive_data_acceptance"),
    # A connection's secret names depend on its provider (github: webhook_secret; twilio: auth_token, ...):
    # cross-field, checked by the service (CHANNEL_SECRETS_INVALID naming the names the provider takes).
    ("POST /api/v1/channels/connections/", "positive_data_acceptance"),
    # A proof needs a checkpoint whose tree covers the event (LEDGER_PROOF_INVALID before one exists) and an
    # event the caller may read: state the schema cannot state.
    ("GET /api/v1/ledger/events/{seq}/proof/", "positive_data_acceptance"),
    # A skill envelope is judged by its signatures, publisher trust and compatibility (SKILL_* codes), not by
    # its JSON shape: a schema-valid envelope that nobody signed is refused, as it must be.
    ("POST /api/v1/skills/install/", "positive_data_acceptance"),
    ("POST /api/v1/skills/verify/", "positive_data_acceptance"),
    # A publisher's keys are PEM public keys and a rotation a DSSE statement signed by a threshold of the
    # current keys (PUBLISHER_INVALID, PUBLISHER_ROTATION_INVALID): no schema states a valid key or signature.
    ("POST /api/v1/skills/publishers/", "positive_data_acceptance"),
    ("POST /api/v1/skills/publishers/{name}/rotate/", "positive_data_acceptance"),
    # A plugin manifest is checked by its own schema and cross-field rules (its principal must exist in the
    # tenant, its public key be an Ed25519 point, its dependencies close no cycle): PLUGIN_MANIFEST_INVALID
    # naming the field, PLUGIN_DEPENDENCY_CYCLE -- state the request schema cannot state.
    ("POST /api/v1/plugins/", "positive_data_acceptance"),
    # Any JSON body with U+0000 or a lone surrogate in a string is MALFORMED_JSON before the view (PostgreSQL
    # cannot store it); bulk-decide's free-form item objects do not carry the string pattern that says so.
    ("POST /api/v1/approvals/bulk-decide/", "positive_data_acceptance"),
    # A label mapping names each label once (LABEL_MAPPING_INVALID): DRF's ListField states no uniqueItems.
    ("POST /api/v1/label-mapping/", "positive_data_acceptance"),
    # DRF's CharField reads a number as its text (`"target": 0.2` is "0.2"): a schema-violating type that
    # the serializer coerces. Refusing it would take strict string fields project-wide (not done yet).
    ("POST /api/v1/killswitch/", "negative_data_rejection"),
    # A decision on held work names an execution by id: it must exist, be visible and hold a step the kill
    # switch held (NOT_FOUND, KILL_SWITCH_NOTHING_HELD): state the schema cannot state. Its `execution`
    # and `reason` are CharFields too (a number is read as its text).
    ("POST /api/v1/killswitch/held/", "positive_data_acceptance"),
    ("POST /api/v1/killswitch/held/", "negative_data_rejection"),
    ("POST /api/v1/channels/connections/", "negative_data_rejection"),  # `channel`, `name`: the same
    # django-filter reads an empty value (`?status=`) as "no filter"; the schema's enum has no "".
    *(
        (f"GET /api/v1/{resource}/", "negative_data_rejection")
        for resource in ("approvals", "incidents", "signals", "silences", "evidence")
    ),
}

_WSGI = get_wsgi_application()


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """Django's test client does the same: a request's end must not close the test's connection."""
    logging.getLogger("django.request").setLevel(logging.ERROR)  # thousands of 4xx lines otherwise
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db):
    document = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(document)


def _bearer(*, human: bool) -> str:
    principal = PrincipalFactory(tenant=TenantFactory(), human=human, capabilities=sorted(CAPABILITIES))
    return token_for(principal)


@pytest.fixture
def service_bearer(db) -> str:
    return _bearer(human=False)


@pytest.fixture
def human_bearer(db) -> str:
    return _bearer(human=True)


_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def _fuzz(api_schema, bearer: str) -> list[str]:
    """Every operation, positive then negative cases; the failures, one line each (all of them)."""
    headers = {"Authorization": f"Bearer {bearer}"}
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        checks = [c for c in CHECKS if (operation.label, c.__name__) not in EXCLUDED]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                # Called at once, inside this iteration: the loop variable is the one meant.
                case.call_and_validate(app=_WSGI, headers=headers, checks=checks)  # noqa: B023

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, then one report
                first = str(exc).strip().splitlines()
                failures.append(f"{operation.label} [{mode}]: {' | '.join(first[:12])}")
    return failures


def test_api_answers_a_service_principal_as_its_schema_says(api_schema, service_bearer):
    failures = _fuzz(api_schema, service_bearer)
    assert not failures, "\n".join(failures)


def test_api_answers_a_human_principal_as_its_schema_says(api_schema, human_bearer):
    failures = _fuzz(api_schema, human_bearer)
    assert not failures, "\n".join(failures)
