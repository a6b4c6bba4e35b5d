"""WSGI entry point (gunicorn, runserver). Prints the start-up banner once per process."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

application = get_wsgi_application()

from controlplane.startup import log_banner  # noqa: E402  (needs the app registry)

log_banner()
