"""Which exceptions are outages, and the coded 503 the middleware answers them with."""

from __future__ import annotations

import json

import psycopg
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory
from redis.exceptions import ConnectionError as RedisConnectionError

from controlplane.kernel.outages import outage_code
from controlplane.middleware import OutageMiddleware


def _wrapped(cause: Exception) -> OperationalError:
    error = OperationalError(str(cause))
    error.__cause__ = cause
    return error


def test_lost_connections_are_outages_and_a_deadlock_is_not():
    assert outage_code(InterfaceError("connection already closed")) == "DATABASE_UNAVAILABLE"
    assert (
        outage_code(_wrapped(psycopg.OperationalError("the connection is closed"))) == "DATABASE_UNAVAILABLE"
    )
    assert outage_code(_wrapped(psycopg.errors.AdminShutdown("terminating"))) == "DATABASE_UNAVAILABLE"
    assert outage_code(_wrapped(psycopg.errors.DeadlockDetected("deadlock"))) is None
    assert outage_code(RedisConnectionError("Error 111 connecting")) == "BROKER_UNAVAILABLE"
    assert outage_code(ValueError("nope")) is None


def test_the_api_answers_an_outage_503_with_its_code():
    middleware = OutageMiddleware(lambda request: None)
    request = RequestFactory().get("/api/v1/ledger/events/")
    request.request_id = "req-1"
    response = middleware.process_exception(request, RedisConnectionError("Error 111 connecting"))
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    body = json.loads(response.content)
    assert (body["code"], body["request_id"]) == ("BROKER_UNAVAILABLE", "req-1")


def test_the_console_answers_an_outage_with_a_minimal_coded_page():
    middleware = OutageMiddleware(lambda request: None)
    response = middleware.process_exception(RequestFactory().get("/"), InterfaceError("closed"))
    assert response.status_code == 503
    assert b'data-code="DATABASE_UNAVAILABLE"' in response.content


def test_other_errors_are_left_alone():
    middleware = OutageMiddleware(lambda request: None)
    assert middleware.process_exception(RequestFactory().get("/"), ValueError("bug")) is None
