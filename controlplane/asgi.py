"""ASGI entry point: `POST /api/v1/events/` on the event loop, everything else to Django.

Serve it with gunicorn's uvicorn worker (docs/operations.md):

    gunicorn -k uvicorn_worker.UvicornWorker controlplane.asgi:application

Ingest deliveries of one event take controlplane.channels.ingest.event_loop (same checks and answers as
the WSGI path, appended by a group commit on the loop); every other request goes to Django's ASGI handler
unchanged (a batched delivery too: Django's view appends the batch in one transaction). Prints the
start-up banner once per process.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

django_application = get_asgi_application()

from controlplane.channels.ingest import event_loop as ingest_event_loop  # noqa: E402  (app registry)
from controlplane.serving import INGEST_PATH, freeze_startup_objects  # noqa: E402
from controlplane.startup import log_banner  # noqa: E402

_BATCH = b"application/cloudevents-batch+json"


def _is_batch(scope: dict[str, Any]) -> bool:
    """A batched delivery goes to Django's view (controlplane.channels.ingest.lean), which appends the
    whole batch in one transaction; the loop's path takes one event per request."""
    return any(name == b"content-type" and value.startswith(_BATCH) for name, value in scope["headers"])


class IngestRouter:
    """ASGI: ingest POSTs to the loop's own handler, lifespan answered here, the rest to Django."""

    def __init__(self, django_app: Any) -> None:
        self.django_app = django_app
        self.fast = ingest_event_loop.phases_match_settings()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif (
            self.fast
            and scope["type"] == "http"
            and scope["path"] == INGEST_PATH
            and scope["method"] == "POST"
            and not _is_batch(scope)
        ):
            await ingest_event_loop.handle(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)

    @staticmethod
    async def _lifespan(receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await ingest_event_loop.group_commit.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


application = IngestRouter(django_application)

log_banner()
freeze_startup_objects()
