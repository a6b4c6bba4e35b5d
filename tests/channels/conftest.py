"""Fixtures for the ingest tests: a tenant, producers, and a client that signs deliveries."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from controlplane.channels import services
from tests.channels.asgi import AsgiClient, LoopThread
from tests.channels.stand_in import stand_in  # noqa: F401  (fixture: Slack's, Twilio's, Meta's API stand-in)
from tests.channels.support import (
    Deliver,
    LeanClient,
    make_deliver,
)
from tests.identity.factories import TenantFactory


@pytest.fixture(autouse=True)
def _strict_mode(settings):
    settings.CONTROLPLANE_EVENT_SIGNING_MODE = "require-valid-signature"
    settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS = 300
    settings.CONTROLPLANE_INGEST_MAX_INFLIGHT = 32
    # Off unless a test is about it: on a loaded machine the ASGI path's loop can run late for reasons
    # of the machine's, and would then (rightly) refuse; the shedding tests set it themselves.
    settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = 0


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def producer(tenant) -> services.CreatedProducer:
    return services.producer_create(tenant=tenant, name="alerts", actor="test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that deliver through the ASGI path commit (see `deliver`)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("deliver") == "asgi":
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(scope="session")
def asgi_loop(django_db_setup, django_db_blocker):
    """The event loop the ASGI tests share, as a uvicorn worker has one; its chain writer's connection is
    closed (on the loop) before the test database goes."""
    loop = LoopThread()
    yield loop
    from controlplane.channels.ingest import event_loop

    with django_db_blocker.unblock():
        loop.run(event_loop.group_commit.writer.close())
        loop.run(sync_to_async(connections.close_all, thread_sensitive=True)())  # the ORM's thread
    loop.stop()


@pytest.fixture(params=["django", "lean", "asgi"])
def deliver(request, client) -> Deliver:
    """Every delivery test runs three times: through Django's full stack (URL conf, all middleware), the
    lean WSGI chain (controlplane.serving) and the ASGI application's own ingest path
    (controlplane.channels.ingest.event_loop). All must answer alike. The ASGI path appends on a connection
    of its own, as in production, so its tests commit (transactional_db)."""
    if request.param == "asgi":
        deliver = make_deliver(AsgiClient(request.getfixturevalue("asgi_loop")))
    else:
        deliver = make_deliver(client if request.param == "django" else LeanClient())
    deliver.via = request.param
    return deliver
