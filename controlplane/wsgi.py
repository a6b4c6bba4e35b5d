"""WSGI entry point (gunicorn, runserver). Prints the start-up banner once per process.

Ingest POSTs take a lean path (controlplane.serving, controlplane.channels.ingest.lean); run gunicorn with
`-k controlplane.serving.QueueTimeWorker` so that past saturation they are refused fast.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from controlplane.serving import IngestFastPath, freeze_startup_objects

application = IngestFastPath(get_wsgi_application())

from controlplane.startup import log_banner  # noqa: E402  (needs the app registry)

log_banner()
freeze_startup_objects()
