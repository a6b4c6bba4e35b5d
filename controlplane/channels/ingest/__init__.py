"""The serving paths of signed CloudEvents ingest, `POST /api/v1/events/` (docs/ingest.md).

Three paths answer the same deliveries with the same checks, in the same order, with the same reason
codes, bodies and headers; tests/channels runs every delivery case through all three. Why three:

- `event_loop` — **the ASGI path, the production configuration** (`controlplane.asgi` under gunicorn's
  uvicorn worker). A delivery is a coroutine on the worker's event loop, appended by a group commit on
  the loop: a delivery is mostly waiting for its batch, and on the loop the appender resumes within one
  pass instead of waiting for the GIL behind other threads while it holds the chain's lock.
- `lean` — **the lean WSGI path** (`controlplane.wsgi` through `controlplane.serving.IngestFastPath`,
  for WSGI servers such as gunicorn's `gthread` worker). The view without URL resolving and behind only
  the middleware a bearer-token JSON API needs, one request thread per delivery, a group commit across
  threads.
- `view` — **the Django full-stack view** (`EventIngestView`, reached through the URL conf and every
  middleware: runserver, the test client, a deployment without either fast path). Its POST is handed to
  `lean.ingest_post` at once; DRF serves only the other methods and the OpenAPI schema.

What all three share is in `checks`: authentication with a short-lived per-process cache, the checks of
`controlplane.channels.services.event_check`, and the answers' bytes. The writes themselves (checking and
appending deliveries, counting refusals) are services (controlplane.channels.services). The hot path
calls those functions directly: this package adds no layer between a request and them.
"""
