"""ASGI entry point. Prints the start-up banner once per process."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

application = get_asgi_application()

from controlplane.startup import log_banner  # noqa: E402  (needs the app registry)

log_banner()
