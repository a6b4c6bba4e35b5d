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
from tests.factories import PrincipalFactory, TenantFactory, token_for

# Bounded: ~47 operations x 2 principals x this many generated cases (plus the explicit examples).
MAX_EXAMPLES = 8

CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.positive_data_acceptance,
]

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
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                case.call_and_validate(app=_WSGI, headers=headers, checks=CHECKS)

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
